#!/usr/bin/env bash
# The GPU measurements of issue 10 in one call of the device tool (the lent H100 / H200 machine).
# Here first:   bash benchmarks/gpu_wheels.sh        (the wheels the image lacks, into .whl/)
# Then:         run(command="bash benchmarks/gpu_run.sh", carry=[".whl"], timeout_s=600)
#
# Stages, in the order STAGES names them (default "tests kernels node_step"):
#   tests      pytest -m gpu tests/kernels tests/training/test_training_vllm_gpu.py
#              (the vLLM test skips: vLLM is not on the image and cannot be carried)
#   kernels    benchmarks/kernel_speed.py: Triton vs eager vs Liger-Kernel, Qwen2.5-0.5B shapes
#   node_step  benchmarks/node_step.py --backends fast hf: one node step per backend, 494M model
# Before them: the carried wheels go to $SITE_DIR, and the GPU, versions and a check that every
# import the stages need works are printed. One stage failing or timing out stops no other; each
# runs under min(its cap, what BUDGET_S has left) so the summary table (last, since the reply
# carries only the tail) is always printed inside the tool's 600 s. Logs and JSON lines go to
# $OUT (the device tool's; elsewhere runs/gpu-DATE): env.txt, gpu_tests.log, kernels.jsonl,
# kernels.log, node_step.jsonl, node_step.log, summary.txt.
#
# Env: STAGES; BUDGET_S (570: seconds for everything); TESTS_TIMEOUT (150), KERNELS_TIMEOUT
# (200), NODE_STEP_TIMEOUT (300); PYTEST_ARGS, KERNELS_ARGS, NODE_STEP_ARGS (extra arguments,
# split on spaces); NODE_STEP_BACKENDS ("fast hf"); PYTHON (python3); WHL_DIR (.whl);
# SITE_DIR (/tmp/site). Two calls, if one is too tight: STAGES="tests kernels", then
# STAGES=node_step. On CPU (a rehearsal): the GPU stages fail or skip and are reported, e.g.
#   OUT=/tmp/g NODE_STEP_ARGS="--device cpu --steps 1 --warmup 0" bash benchmarks/gpu_run.sh
set -u -o pipefail
cd "$(dirname "$0")/.." || exit 1
REPO=$PWD
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

PY=${PYTHON:-python3}
STAGES=${STAGES:-tests kernels node_step}
WHL=${WHL_DIR:-.whl}
SITE=${SITE_DIR:-/tmp/site}
BUDGET=${BUDGET_S:-570}
RESERVE=15  # seconds kept for the summary
OUT=${OUT:-runs/gpu-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT" || exit 1
OUT=$(cd "$OUT" && pwd)
TMPD=$(mktemp -d)
trap 'rm -rf "$TMPD"' EXIT
STATUS=$TMPD/status.tsv  # stage <tab> status <tab> seconds
: >"$STATUS"
START=$SECONDS
read -r -a PYTEST_EXTRA <<<"${PYTEST_ARGS:-}"
read -r -a KERNELS_EXTRA <<<"${KERNELS_ARGS:-}"
read -r -a NODE_STEP_EXTRA <<<"${NODE_STEP_ARGS:-}"
read -r -a BACKENDS <<<"${NODE_STEP_BACKENDS:-fast hf}"

for stage in $STAGES; do
    case $stage in
    tests | kernels | node_step) ;;
    *)
        echo "unknown stage '$stage' in STAGES (known: tests kernels node_step)" >&2
        exit 2
        ;;
    esac
done

# run_stage NAME CAP LOG CMD...: CMD under min(CAP, the budget left) seconds, its output shown
# and kept in LOG; the outcome goes to the summary. Never stops the script.
run_stage() {
    local name=$1 cap=$2 log=$3
    shift 3
    local left=$((BUDGET - (SECONDS - START) - RESERVE))
    local limit=$((cap < left ? cap : left))
    if ((limit < 20)); then
        echo "### $name: not run, ${left}s left of BUDGET_S=$BUDGET"
        printf '%s\tnot run: out of budget\t0\n' "$name" >>"$STATUS"
        return
    fi
    echo "### $name (limit ${limit}s): $*"
    local t0=$SECONDS rc status
    timeout -k 10 "$limit" "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    case $rc in
    0) status=ok ;;
    124 | 137) status="TIMED OUT at ${limit}s" ;;
    *) status="FAILED (exit $rc)" ;;
    esac
    echo "### $name: $status in $((SECONDS - t0))s"
    printf '%s\t%s\t%s\n' "$name" "$status" "$((SECONDS - t0))" >>"$STATUS"
}

# --- setup: carried wheels, versions, imports ------------------------------------------------
shopt -s nullglob
WHEELS=("$WHL"/*.whl)
shopt -u nullglob
if ((${#WHEELS[@]})); then
    export PYTHONPATH="$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
fi
{
    t0=$SECONDS
    echo "### setup: $(date -u +%FT%TZ), $(uname -srm), repo $REPO"
    if ((${#WHEELS[@]})); then
        if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --disable-pip-version-check --target "$SITE" "${WHEELS[@]}"; then
            setup="ok: ${#WHEELS[@]} wheels -> $SITE"
        else
            setup="FAILED: pip install of $WHL"
        fi
    else
        setup="no wheels in $WHL (carry it)"
    fi
    echo "PYTHONPATH=$PYTHONPATH"
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    else
        echo "nvidia-smi: not found"
    fi
    "$PY" - "$SITE" "$TMPD/device.txt" <<'EOF'
import importlib, importlib.metadata as md, platform, sys
from pathlib import Path

site, device_file = Path(sys.argv[1]), Path(sys.argv[2])

def ver(name):
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None

try:
    import torch
    cuda = torch.cuda.is_available()
    dev = torch.cuda.get_device_name() if cuda else "no CUDA device"
    line = f"{dev} | torch {torch.__version__} (CUDA {torch.version.cuda})"
except Exception as e:  # noqa: BLE001
    line = f"torch not importable: {type(e).__name__}: {e}"
line += f" | triton {ver('triton')} | python {platform.python_version()}"
device_file.write_text(line + "\n")
print(line)
print("versions:", ", ".join(f"{n} {ver(n)}" for n in (
    "transformers", "tokenizers", "huggingface-hub", "safetensors", "numpy", "pytest",
    "typing-extensions", "pydantic", "trio", "cryptography", "liger-kernel", "vllm")))
if site.is_dir():  # what a carried wheel needs and nothing here gives (informational)
    from packaging.requirements import Requirement
    for d in md.distributions(path=[str(site)]):
        for r in d.requires or []:
            req = Requirement(r)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            have = ver(req.name)
            if have is None or not req.specifier.contains(have, prereleases=True):
                print(f"unmet (informational): {d.metadata['Name']} needs {req.name}{req.specifier} "
                      f"(here: {have})")
bad = 0
for mod in ("pydantic", "trio", "cryptography.hazmat.primitives.asymmetric.ed25519", "base58",
            "swarmrl.config", "swarmrl.protocol.messages", "swarmrl.tasks",
            "swarmrl.brain.lm", "swarmrl.kernels", "liger_kernel.transformers",
            "liger_kernel.chunked_loss"):
    try:
        importlib.import_module(mod)
    except Exception as e:  # noqa: BLE001
        bad += 1
        print(f"import {mod}: FAILED: {type(e).__name__}: {e}")
print(f"imports: {'all ok' if not bad else f'{bad} FAILED'}")
EOF
    printf 'setup\t%s\t%s\n' "$setup" "$((SECONDS - t0))" >>"$STATUS"
} 2>&1 | tee "$OUT/env.txt"

# --- the stages --------------------------------------------------------------------------------
for stage in $STAGES; do
    case $stage in
    tests)
        run_stage tests "${TESTS_TIMEOUT:-150}" "$OUT/gpu_tests.log" \
            "$PY" -m pytest -m gpu tests/kernels tests/training/test_training_vllm_gpu.py \
            -p no:cacheprovider "${PYTEST_EXTRA[@]}"
        ;;
    kernels)
        run_stage kernels "${KERNELS_TIMEOUT:-200}" "$OUT/kernels.log" \
            "$PY" benchmarks/kernel_speed.py --out "$OUT/kernels.jsonl" "${KERNELS_EXTRA[@]}"
        ;;
    node_step)
        run_stage node_step "${NODE_STEP_TIMEOUT:-300}" "$OUT/node_step.log" \
            "$PY" benchmarks/node_step.py --backends "${BACKENDS[@]}" \
            --out "$OUT/node_step.jsonl" "${NODE_STEP_EXTRA[@]}"
        ;;
    esac
done

# --- summary (last: the device tool's reply carries the tail) ---------------------------------
"$PY" - "$OUT" "$STATUS" "$TMPD/device.txt" "$((SECONDS - START))" <<'EOF' 2>&1 |
import json, sys
from pathlib import Path

out, status, device, total = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]

def jsonl(name):
    p = out / name
    if not p.exists():
        return []
    rows = []
    for line in p.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            pass
    return rows

def last_line(name, prefix=""):
    p = out / name
    lines = [x.strip(" =") for x in p.read_text().splitlines()] if p.exists() else []
    lines = [x for x in lines if x.startswith(prefix) and x]
    return lines[-1][:72] if lines else ""

print(f"=== gpu_run summary: {total}s, files in {out}")
print(device.read_text().strip() if device.exists() else "device: unknown (setup failed)")
kern, node = jsonl("kernels.jsonl"), jsonl("node_step.jsonl")
notes = {
    "setup": last_line("env.txt", "imports:"),
    "tests": last_line("gpu_tests.log"),
    "kernels": f"{sum('ms' in r for r in kern)} timed rows" if kern else last_line("kernels.log"),
    "node_step": (", ".join(r["backend"] + (" skipped" if "skipped" in r else
                                            " ERROR" if "error" in r else "")
                            for r in node if "backend" in r)
                  or ("no backend finished" if node else last_line("node_step.log"))),
}
rows = [line.split("\t") for line in status.read_text().splitlines()]
width = max([len(st) for _, st, _ in rows] + [6])
print(f"{'stage':10} {'status':{width}} {'s':>4}  result")
for stage, st, secs in rows:
    print(f"{stage:10} {st:{width}} {secs:>4}  {notes.get(stage, '')}")
if kern:
    print("kernels: ms per fwd+bwd, peak MiB over inputs; x = eager / impl (time, memory)")
    ratios = {(r["bench"], r["ratio"].split("/")[1]): r for r in kern if "ratio" in r}
    for r in kern:
        if "impl" not in r:
            continue
        what = (f"{r['ms']:9.3f} ms {r['peak_mib']:9.1f} MiB" if "ms" in r
                else (r.get("error") or r.get("skipped") or "?")[:60])
        x = ratios.get((r["bench"], r["impl"]))
        xs = f"  x {x['time_x']} / {x['memory_x']}" if x else ""
        print(f"  {r['bench']:22} {r['impl']:7} {what}{xs}")
if node:
    meta = next((r for r in node if r.get("meta")), {})
    print(f"node_step: {meta.get('model')} {meta.get('params')} params {meta.get('dtype')}, "
          f"{meta.get('prompts')}x{meta.get('group_size')}x{meta.get('max_new_tokens')} tokens, "
          f"{meta.get('warmup')} warmup + {meta.get('steps')} steps; medians in s")
    for r in node:
        if "backend" not in r:
            continue
        if "step_s_median" not in r:
            print(f"  {r['backend']:5} {(r.get('skipped') or r.get('error') or '?')[:90]}")
            continue
        print(f"  {r['backend']:5} step {r['step_s_median']:.3f} = gen {r['generate_s_median']:.3f}"
              f" + train {r['train_s_median']:.3f}; {r['tokens_per_s']} tok/s "
              f"(gen {r['generate_tokens_per_s']}); peak {r.get('peak_mib', '-')} MiB")
    for r in node:
        if "ratio" in r:
            print(f"  {r['ratio']}: step x {r['step_x']}, generate x {r['generate_x']}, "
                  f"train x {r['train_x']}, memory x {r.get('memory_x', '-')}")
EOF
    tee "$OUT/summary.txt"
# Exit status: 0 when every stage ran through (the reply's rc says so at a glance).
awk -F '\t' '$2 !~ /^ok/ { bad = 1 } END { exit bad }' "$STATUS"
