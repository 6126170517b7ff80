"""Let YuNet 2023mar take any input size that is a multiple of 32, not only 640×640.

The shipped graph declares its input as [1, 3, 640, 640] and its outputs as [1, cells, k] with the
cell counts of 640×640, but nothing inside depends on that size: every Reshape is to [1, -1, k]
and both Resize nodes scale by 2. ONNX Runtime checks a fixed input size, so a 640×384 window
(a 16:9 frame scaled to 640 wide, padded to a multiple of the largest stride) is refused by the
original file. This changes only the declared shapes: input height and width become the symbolic
`height` and `width`, each output's cell count the symbolic `cells_{stride}`, and the inferred
intermediate shapes (value_info) are dropped. The weights and nodes are untouched, so a
640×640 input gives the same numbers as the original file bit for bit. Deterministic: the same
input gives the same bytes.

Usage: python derive_yunet_any_size.py SRC.onnx DST.onnx   (needs the `onnx` package)
"""

import sys

import onnx


def symbolic(dim, name):
    dim.ClearField("dim_value")
    dim.dim_param = name


def main(src, dst):
    model = onnx.load(src)
    graph = model.graph
    if len(graph.input) != 1:
        sys.exit(f"{src}: expected one graph input, found {len(graph.input)}")
    dims = graph.input[0].type.tensor_type.shape.dim
    shape = [d.dim_value for d in dims]
    if shape != [1, 3, 640, 640]:
        sys.exit(f"{src}: expected the input [1, 3, 640, 640], found {shape}")
    for node in graph.node:
        if node.op_type == "Resize" and len(node.input) < 3:
            sys.exit(f"{src}: Resize node {node.name!r} has no scales input")
    symbolic(dims[2], "height")
    symbolic(dims[3], "width")
    for output in graph.output:
        out_dims = output.type.tensor_type.shape.dim
        stride = output.name.rsplit("_", 1)[-1]
        if len(out_dims) != 3 or not stride.isdigit():
            sys.exit(f"{src}: unexpected output {output.name} with {len(out_dims)} axes")
        symbolic(out_dims[1], f"cells_{stride}")
    del graph.value_info[:]
    onnx.checker.check_model(model)
    onnx.save(model, dst)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
