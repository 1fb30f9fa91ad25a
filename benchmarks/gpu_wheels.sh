#!/usr/bin/env bash
# Download the wheels that benchmarks/gpu_run.sh needs on the lent GPU machine and its image
# lacks, into .whl/ (git-ignored), for that machine's Python 3.12 on x86-64 Linux. Run it here,
# where PyPI is reachable; then pass `bash benchmarks/gpu_run.sh` to the device tool's `run`
# with carry [".whl"]. The GPU machine has no network: whatever is not on its image must travel.
#
# The set is the import closure of what gpu_run.sh runs (swarmrl.kernels, benchmarks/kernel_speed.py,
# a real node step of benchmarks/node_step.py: tasks, verify, train; the `-m gpu` tests and their
# conftest), minus the packages the image has (/work/.library/device/KINDS.md):
#   pydantic, pydantic-core, annotated-types, typing-inspection   swarmrl.config, tasks, protocol
#   trio, outcome, sniffio                                        swarmrl.protocol (messages)
#   base58, cryptography, cffi                                    swarmrl.protocol.identity
#   typing-extensions   on the image, but pydantic 2.14 asks for >= 4.16 and the image's version
#                       is not recorded (4.15 was enough in a rehearsal): 45 KB, no question
#   liger-kernel        the Liger rows of benchmarks/kernel_speed.py (pure Python; torch + triton)
# Not carried, though a wheel names it: pycparser (cffi's C parser; cryptography only loads
# _cffi_backend), dill (optional in torch), math-verify and reasoning-gym (arith tasks use the
# numeric verifier), libp2p (only the libp2p transport imports it). vLLM cannot travel: it is not
# on the image and its wheel alone is far over the 64 MiB the working tree may carry.
#
# Env: WHL_DIR (default .whl), WHL_PYTHON_VERSION (default 3.12; 3.11 fetches the same versions
# for this machine's Python, to rehearse the closure in a local venv), PYTHON (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
DEST=${WHL_DIR:-.whl}
PYVER=${WHL_PYTHON_VERSION:-3.12}
LIMIT_MIB=60  # the whole working tree travels within 64 MiB

# One pinned version each (pyproject.toml: pydantic>=2.7, cryptography>=42, base58>=2.1,
# trio>=0.25); the versions the project's own venv and CI run.
PINS=(
    pydantic==2.14.3
    pydantic-core==2.50.4
    annotated-types==0.8.0
    typing-inspection==0.4.5
    typing-extensions==4.16.0
    trio==0.35.0
    outcome==1.3.0.post0
    sniffio==1.3.1
    base58==2.1.1
    cryptography==50.0.2
    cffi==2.1.1
    liger-kernel==0.8.5
)

mkdir -p "$DEST"
# .gitignore holds /.whl/; a checkout without that line gets it in .git/info/exclude (the device
# tool sends ignored paths only when a call carries them).
if [[ "$DEST" == .whl ]] && ! git check-ignore -q .whl/x.whl 2>/dev/null; then
    exclude=$(git rev-parse --git-path info/exclude)
    mkdir -p "$(dirname "$exclude")"
    echo "/.whl/" >>"$exclude"
    echo "added /.whl/ to $exclude"
fi

# A wheel's file name starts with its name, lower case, '-' and '.' as '_'. Keep one version of
# each: two versions of a package in .whl stop the whole install there.
wheel_prefix() { local n=${1%%==*}; n=${n,,}; n=${n//-/_}; echo "${n//./_}"; }
for pin in "${PINS[@]}"; do
    prefix=$(wheel_prefix "$pin")
    for f in "$DEST/$prefix"-*.whl; do
        [[ -e "$f" && "$(basename "$f")" != "$prefix-${pin##*==}-"* ]] && rm -v -- "$f"
    done
done

"$PY" -m pip download -q --no-deps --only-binary=:all: --disable-pip-version-check \
    --python-version "$PYVER" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d "$DEST" "${PINS[@]}"

total=0
missing=0
printf '%-66s %10s\n' wheel bytes
for pin in "${PINS[@]}"; do
    prefix=$(wheel_prefix "$pin")
    files=("$DEST/$prefix-${pin##*==}-"*.whl)
    if [[ ! -e "${files[0]}" ]]; then
        echo "MISSING: $pin" >&2
        missing=1
        continue
    fi
    for f in "${files[@]}"; do
        size=$(stat -c %s "$f")
        total=$((total + size))
        printf '%-66s %10d\n' "$(basename "$f")" "$size"
    done
done
mib=$(awk -v b="$total" 'BEGIN { printf "%.1f", b / 1048576 }')
echo "total: ${#PINS[@]} wheels, $total bytes = $mib MiB in $DEST (python $PYVER)"
others=$(find "$DEST" -maxdepth 1 -type f -name '*.whl' | wc -l)
if ((others != ${#PINS[@]})); then
    echo "note: $DEST holds $others wheels, ${#PINS[@]} pinned here; all of them get installed" >&2
fi
if ((total > LIMIT_MIB * 1048576)); then
    echo "over $LIMIT_MIB MiB: the working tree may carry 64 MiB in all" >&2
    exit 1
fi
exit "$missing"
