"""Rebuild face-api.js's AgeGenderNet (TF.js weights) as an fp32 ONNX model.

@vladmandic/face-api ships the network only as TF.js weights (a JSON manifest of tensor names,
shapes and quantization, plus one binary shard) and as JavaScript code. This script decodes the
weights exactly as tfjs-core does (uint8/uint16 affine quantization: value = q * scale + min,
computed in float64 and stored as float32) and writes the same computation as ONNX nodes: a
TinyXception feature extractor (entry conv, two reduction blocks, two residual main blocks, an
exit reduction block, a separable conv), a 7x7 average pool and two dense heads.

Graph contract:
  input  `input`  float32 [N,112,112,3] (NHWC), RGB, raw 0..255. The graph subtracts
                  [122.782, 117.001, 104.298] and divides by 255, as face-api does.
  output `age`    float32 [N,1], years (a regression, no softmax).
  output `gender` float32 [N,2], softmax probabilities ordered [P(female), P(male)].

face-api's own gender head is male first; its two weight columns and biases are swapped here so
that the output order matches the dlib gender-v1 model's [female, male]. Swapping before the
softmax gives exactly the swapped probabilities.

Padding follows TF's "same" rule for the fixed 112x112 input (the extra row/column goes at the
end), written as explicit pads. Deterministic: the same weights give the same bytes.

Usage: python derive_agegender_onnx.py WEIGHTS_MANIFEST.json DST.onnx   (needs `onnx`, `numpy`;
the shards named in the manifest are read from the manifest's folder)
"""

import json
import math
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SIZE = 112
MEAN_RGB = [122.782, 117.001, 104.298]
MAIN_BLOCKS = 2
OPSET = 17
IR_VERSION = 8

QUANT_BYTES = {"uint8": 1, "uint16": 2, "float16": 2}
PLAIN = {"float32": np.float32, "int32": np.int32}


def decode_weights(manifest_path):
    """Every tensor of a TF.js weights manifest, by name, decoded like tfjs-core's decodeWeights."""
    manifest_path = Path(manifest_path)
    groups = json.loads(manifest_path.read_text())
    tensors = {}
    for group in groups:
        data = b"".join((manifest_path.parent / p).read_bytes() for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            shape = spec["shape"]
            count = math.prod(shape)
            quant = spec.get("quantization")
            if quant is None:
                dtype = PLAIN[spec["dtype"]]
                size = count * np.dtype(dtype).itemsize
                values = np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<"), count=count, offset=offset)
                values = values.astype(dtype)
            elif spec["dtype"] == "float32" and quant["dtype"] in ("uint8", "uint16"):
                size = count * QUANT_BYTES[quant["dtype"]]
                q = np.frombuffer(data, dtype="<u1" if quant["dtype"] == "uint8" else "<u2", count=count, offset=offset)
                # JavaScript numbers are doubles: v * scale + min, then rounded into a Float32Array.
                values = (q.astype(np.float64) * quant["scale"] + quant["min"]).astype(np.float32)
            elif spec["dtype"] == "float32" and quant["dtype"] == "float16":
                size = count * 2
                values = np.frombuffer(data, dtype="<f2", count=count, offset=offset).astype(np.float32)
            else:
                raise SystemExit(f"{spec['name']}: unsupported dtype {spec['dtype']} / quantization {quant}")
            if spec["name"] in tensors:
                raise SystemExit(f"{spec['name']} appears twice in {manifest_path}")
            tensors[spec["name"]] = values.reshape(shape)
            offset += size
        if offset != len(data):
            raise SystemExit(f"{manifest_path}: {len(data) - offset} bytes of {group['paths']} left over")
    return tensors


def same_pads(size, kernel, stride):
    """TF "same" padding for one axis: (begin, end, output size); the odd pixel goes at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2, out


class Builder:
    def __init__(self, weights):
        self.weights = weights
        self.used = set()
        self.nodes = []
        self.initializers = []
        self.count = 0

    def name(self, stem):
        self.count += 1
        return f"{stem}_{self.count}"

    def weight(self, key):
        if key not in self.weights:
            raise SystemExit(f"the weights manifest has no tensor {key}")
        self.used.add(key)
        return self.weights[key]

    def const(self, name, array):
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op, inputs, stem, **attrs):
        out = self.name(stem)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def relu(self, x):
        return self.node("Relu", [x], "relu")

    def conv(self, x, size, prefix, stride):
        """face-api's conv: conv2d(filters [H,W,Cin,Cout], "same") + bias."""
        w = self.weight(f"{prefix}/filters")
        b = self.weight(f"{prefix}/bias")
        k = w.shape[0]
        p0, p1, out = same_pads(size, k, stride)
        wn = self.const(f"{prefix}/filters", w.transpose(3, 2, 0, 1))
        bn = self.const(f"{prefix}/bias", b)
        y = self.node("Conv", [x, wn, bn], prefix.replace("/", "."), kernel_shape=[k, k],
                      strides=[stride, stride], pads=[p0, p0, p1, p1])
        return y, out

    def separable(self, x, size, prefix):
        """tf.separableConv2d(depthwise [H,W,C,1], pointwise [1,1,C,Cout], stride 1, "same") + bias."""
        dw = self.weight(f"{prefix}/depthwise_filter")
        pw = self.weight(f"{prefix}/pointwise_filter")
        b = self.weight(f"{prefix}/bias")
        k, channels, multiplier = dw.shape[0], dw.shape[2], dw.shape[3]
        p0, p1, _ = same_pads(size, k, 1)
        dwn = self.const(f"{prefix}/depthwise_filter", dw.transpose(2, 3, 0, 1).reshape(channels * multiplier, 1, k, k))
        pwn = self.const(f"{prefix}/pointwise_filter", pw.transpose(3, 2, 0, 1))
        bn = self.const(f"{prefix}/bias", b)
        stem = prefix.replace("/", ".")
        y = self.node("Conv", [x, dwn], stem + ".depthwise", kernel_shape=[k, k], group=channels,
                      strides=[1, 1], pads=[p0, p0, p1, p1])
        return self.node("Conv", [y, pwn, bn], stem + ".pointwise", kernel_shape=[1, 1])

    def reduction_block(self, x, size, prefix, activate_input=True):
        out = self.relu(x) if activate_input else x
        out = self.separable(out, size, f"{prefix}/separable_conv0")
        out = self.separable(self.relu(out), size, f"{prefix}/separable_conv1")
        p0, p1, half = same_pads(size, 3, 2)
        out = self.node("MaxPool", [out], "maxpool", kernel_shape=[3, 3], strides=[2, 2], pads=[p0, p0, p1, p1])
        shortcut, _ = self.conv(x, size, f"{prefix}/expansion_conv", 2)
        return self.node("Add", [out, shortcut], "add"), half

    def main_block(self, x, size, prefix):
        out = x
        for i in range(3):
            out = self.separable(self.relu(out), size, f"{prefix}/separable_conv{i}")
        return self.node("Add", [out, x], "add")

    def dense(self, x, prefix, column_order=None):
        w = self.weight(f"{prefix}/weights")
        b = self.weight(f"{prefix}/bias")
        if column_order is not None:
            w, b = w[:, column_order], b[column_order]
        y = self.node("MatMul", [x, self.const(f"{prefix}/weights", w)], prefix.replace("/", ".") + ".matmul")
        return self.node("Add", [y, self.const(f"{prefix}/bias", b)], prefix.replace("/", ".") + ".bias")


def build(weights):
    g = Builder(weights)
    mean = g.const("mean_rgb", np.array(MEAN_RGB, np.float32).reshape(1, 1, 1, 3))
    scale = g.const("divisor", np.array(255.0, np.float32))
    x = g.node("Sub", ["input", mean], "sub_mean")
    x = g.node("Div", [x, scale], "div_255")
    x = g.node("Transpose", [x], "nchw", perm=[0, 3, 1, 2])

    x, size = g.conv(x, SIZE, "entry_flow/conv_in", 2)
    x = g.relu(x)
    x, size = g.reduction_block(x, size, "entry_flow/reduction_block_0", activate_input=False)
    x, size = g.reduction_block(x, size, "entry_flow/reduction_block_1")
    for i in range(MAIN_BLOCKS):
        x = g.main_block(x, size, f"middle_flow/main_block_{i}")
    x, size = g.reduction_block(x, size, "exit_flow/reduction_block")
    x = g.relu(g.separable(x, size, "exit_flow/separable_conv"))
    if size != 7:
        raise SystemExit(f"the feature map is {size}x{size}, expected 7x7")
    x = g.node("AveragePool", [x], "avgpool", kernel_shape=[7, 7], strides=[2, 2])
    x = g.node("Flatten", [x], "flatten", axis=1)

    age = g.dense(x, "fc/age")
    # face-api orders the gender logits [male, female]; swap to [female, male].
    logits = g.dense(x, "fc/gender", column_order=[1, 0])
    g.nodes.append(helper.make_node("Identity", [age], ["age"], name="age"))
    g.nodes.append(helper.make_node("Softmax", [logits], ["gender"], name="gender", axis=1))

    unused = sorted(set(weights) - g.used)
    if unused:
        raise SystemExit(f"weights not used by the graph: {unused}")

    graph = helper.make_graph(
        g.nodes,
        "faceapi_age_gender",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", SIZE, SIZE, 3])],
        [
            helper.make_tensor_value_info("age", TensorProto.FLOAT, ["N", 1]),
            helper.make_tensor_value_info("gender", TensorProto.FLOAT, ["N", 2]),
        ],
        g.initializers,
    )
    model = helper.make_model(
        graph,
        producer_name="regard scripts/derive_agegender_onnx.py",
        opset_imports=[helper.make_opsetid("", OPSET)],
    )
    model.ir_version = IR_VERSION
    model.doc_string = (
        "face-api.js AgeGenderNet (@vladmandic/face-api 1.7.15, MIT). Input NHWC RGB 0..255; "
        "outputs age [N,1] in years and gender [N,2] = [P(female), P(male)]."
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def main(src, dst):
    model = build(decode_weights(src))
    onnx.save(model, dst)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
