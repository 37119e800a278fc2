#!/usr/bin/env bash
# The GPU check, in one command, on a CUDA machine without the project's venv (at most 8 minutes):
#
#   bash benchmarks/gpu_suite.sh [OUT.json]          # default: $OUT/gpu_suite.json, else ./gpu_suite.json
#
# The machine needs CUDA torch, timm, numpy, pillow, onnx and onnxruntime(-gpu). What it lacks of the
# small pure-Python packages (open_clip, ftfy, wcwidth, safetensors, regex) is installed, without
# network, from wheels carried in benchmarks/wheels/ (`make gpu-wheels` fills it; the folder is
# ignored by git). Each part runs under its own time limit, so one that hangs cannot eat the others;
# a part that fails is recorded with its error and the rest still run. Writes one JSON object:
#
#   machine          the card's name, CUDA, the ONNX providers that are available and those that
#                    really ran a session (get_providers() after creating one)
#   index_vit_b16    indexing ViT-B/16 on 12-megapixel JPEGs end to end and model-only, fp16 through
#                    onnxruntime's CUDA provider where it really runs, else torch CUDA; `ratio` says
#                    what bounds it (< 0.9: decoding; about 1: the model)
#   search_1m        one new label scored over a 1,000,000-photo store at ViT-B/16 sizes
#   train_stage1     one stage-1 epoch of paper-vit-b16 with AMP on 2,000 generated images
#                    (images/s, peak GPU memory)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_FILE="${1:-${OUT:-.}/gpu_suite.json}"
WORK="$(mktemp -d)"
PY="${PYTHON:-python3}"

if ls benchmarks/wheels/*.whl >/dev/null 2>&1; then
  for module in open_clip ftfy wcwidth safetensors regex; do
    if ! "$PY" -c "import $module" 2>/dev/null; then
      "$PY" -m pip install --quiet --no-deps --no-index --target "$WORK/site" benchmarks/wheels/*.whl 2>"$WORK/pip.err" \
        || echo "pip could not install the carried wheels: $(tail -1 "$WORK/pip.err")" >&2
      break
    fi
  done
fi
export PYTHONPATH="$WORK/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1

part() {  # part NAME SECONDS COMMAND...: the command's last stdout line that is JSON, or an error record
  local name="$1" seconds="$2"
  shift 2
  timeout "$seconds" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"
  local rc=$?
  "$PY" - "$WORK/$name.out" "$WORK/$name.err" "$rc" >"$WORK/$name.json" <<'EOF'
import json, sys
out, err, rc = open(sys.argv[1]).read(), open(sys.argv[2]).read(), int(sys.argv[3])
try:
    start = out.index("{")
    print(json.dumps(json.loads(out[start:])))
except ValueError:
    print(json.dumps({"error": f"exit {rc}" + (" (time limit)" if rc == 124 else ""), "stderr_tail": err[-1500:]}))
EOF
}

part machine 60 "$PY" - <<'EOF'
import json
import onnxruntime as ort
import torch
from mkt_core.runtime.engine import cuda_device_present
providers = ort.get_available_providers()
really = None
if "CUDAExecutionProvider" in providers and cuda_device_present():
    from onnx import TensorProto, helper
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "probe",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    session = ort.InferenceSession(model.SerializeToString(), providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    really = session.get_providers()
print(json.dumps({"gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                  "cuda": torch.version.cuda, "torch": torch.__version__, "onnxruntime": ort.__version__,
                  "onnx_providers_available": providers, "onnx_providers_that_ran": really}))
EOF
part index_vit_b16 200 "$PY" benchmarks/index_throughput.py --model vit-b16 --photos 1024 --photo-size 4000x3000
part search_1m 150 "$PY" benchmarks/label_search.py --photos 1000000 --local-dims 128 --recall-photos 0 --repeats 3
part train_stage1 200 "$PY" benchmarks/train_throughput.py --preset paper-vit-b16 --images 2000 --steps 5 --repeats 1 --epoch

"$PY" - "$WORK" "$OUT_FILE" <<'EOF'
import json, sys
from pathlib import Path
work, out = Path(sys.argv[1]), Path(sys.argv[2])
result = {name: json.loads((work / f"{name}.json").read_text())
          for name in ("machine", "index_vit_b16", "search_1m", "train_stage1")}
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text(json.dumps(result, indent=2))
print(json.dumps(result, indent=2))
EOF
