"""Fold OpenCV's block-wise int8 DequantizeLinear nodes of SFace into fp32 initializers.

ONNX Runtime rejects the shipped int8 file ("block_size must be 0 for per-tensor quantization")
and the graph declares its weights as graph inputs. This rewrites every DequantizeLinear whose
inputs are all constants as a float32 initializer, drops graph inputs that became initializers or
are no longer used, and saves the result. Deterministic: the same input gives the same bytes.

Usage: python derive_sface_fp32.py SRC.onnx DST.onnx   (needs the `onnx` and `numpy` packages)
"""

import sys

import numpy as np
import onnx
from onnx import numpy_helper


def expand_blocks(values, block_size, axis, target_shape):
    """Repeat per-block scale or zero point values along `axis` to the full tensor shape."""
    if values.ndim == 0 or values.size == 1:
        return values.reshape(())
    if block_size == 0:
        # Per-axis: a 1-D vector along `axis`.
        shape = [1] * len(target_shape)
        shape[axis] = values.shape[0]
        return values.reshape(shape)
    expanded = np.repeat(values, block_size, axis=axis)
    index = [slice(None)] * len(target_shape)
    index[axis] = slice(0, target_shape[axis])
    return expanded[tuple(index)]


def main(src, dst):
    model = onnx.load(src)
    graph = model.graph
    consts = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    consts[node.output[0]] = numpy_helper.to_array(attr.t)

    kept_nodes = []
    folded = {}
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and all(i in consts for i in node.input if i):
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            x = consts[node.input[0]].astype(np.float32)
            axis = attrs.get("axis", 1)
            if axis < 0:
                axis += x.ndim
            block = attrs.get("block_size", 0)
            scale = expand_blocks(consts[node.input[1]].astype(np.float32), block, axis, x.shape)
            zero = np.zeros((), np.float32)
            if len(node.input) > 2 and node.input[2]:
                zero = expand_blocks(consts[node.input[2]].astype(np.float32), block, axis, x.shape)
            folded[node.output[0]] = ((x - zero) * scale).astype(np.float32)
        else:
            kept_nodes.append(node)

    del graph.node[:]
    graph.node.extend(kept_nodes)

    used = {i for node in kept_nodes for i in node.input} | {o.name for o in graph.output}
    old_inits = [init for init in graph.initializer if init.name in used and init.name not in folded]
    del graph.initializer[:]
    graph.initializer.extend(old_inits)
    for name in sorted(folded):
        if name in used:
            graph.initializer.append(numpy_helper.from_array(folded[name], name))

    init_names = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name in used and i.name not in init_names]
    del graph.input[:]
    graph.input.extend(inputs)

    onnx.checker.check_model(model)
    onnx.save(model, dst)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
