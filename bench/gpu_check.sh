#!/usr/bin/env bash
# Issue 5's GPU check, prepared to run as one call on the device machine (an H200 whose image has
# torch, numpy, networkx and opt_einsum but not pydantic or pyro, and no pgmpy to find networks).
#
# Here, once (wheels for Python 3.12 into .whl/, the networks into .bif/, both ignored by git):
#     bash bench/gpu_check.sh prepare
# Then with the device tool, one call (about 5 minutes):
#     run(command="bash bench/gpu_check.sh run", carry=[".whl", ".bif"], timeout_s=540)
# It prints the table of bench/gpu.py (GPU against the same machine's CPU at 2 threads and at
# all its cores) and leaves the figures in $OUT/gpu.json and $OUT/gpu_all_cores.json.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
prepare)
    rm -rf .whl .bif && mkdir -p .whl .bif
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
        pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
        typing_extensions==4.16.0 pyro-ppl==1.9.2 pyro-api==0.1.2
    folder=$(python3 -c "import importlib.util, pathlib; s = importlib.util.find_spec('pgmpy'); print(pathlib.Path(next(iter(s.submodule_search_locations))) / 'utils' / 'example_models')" 2>/dev/null || true)
    [ -n "$folder" ] || folder=$(.venv/bin/python -c "import importlib.util, pathlib; s = importlib.util.find_spec('pgmpy'); print(pathlib.Path(next(iter(s.submodule_search_locations))) / 'utils' / 'example_models')")
    for name in hailfinder alarm insurance andes; do cp "$folder/$name.bif.gz" .bif/; done
    du -sh .whl .bif
    ;;
run)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
    out=${OUT:-/tmp}
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    python3 -m bench.gpu --bif-dir .bif --networks hailfinder,alarm,insurance --json "$out/gpu.json"
    python3 -m bench.gpu --bif-dir .bif --networks hailfinder,alarm --cpu-threads 0 --batches 10000,100000 \
        --json "$out/gpu_all_cores.json"
    ;;
*)
    echo "usage: bash bench/gpu_check.sh prepare|run" >&2
    exit 2
    ;;
esac
