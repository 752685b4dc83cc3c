#!/bin/bash
# One prepared GPU check (run on the lent device machine from the repository root).
set -o pipefail
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
export PYTHONPATH=/tmp/site:$PWD/src
mkdir -p ../shared && ln -sfn "$PWD/.devdata" ../shared/data
git rev-parse HEAD 2>/dev/null | tee $OUT/env.txt
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee -a $OUT/env.txt
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0), 'cudnn', torch.backends.cudnn.version(), 'nccl', torch.cuda.nccl.version(), 'gpus', torch.cuda.device_count())" | tee -a $OUT/env.txt
nproc | tee -a $OUT/env.txt
echo "== tests" | tee $OUT/tests.txt
timeout 200 python3 -m pytest -q -p no:cacheprovider -n 8 tests/app/test_gpu.py tests/sharing/test_contract.py tests/training/test_distributed.py tests/app/test_predict_device.py tests/training/test_rng_states.py tests/models -k "gpu or cuda or device or torchrun or rng or distributed or processes or trunk or recurrent or lstm" 2>&1 | tail -40 | tee -a $OUT/tests.txt
echo "== paper profile, hard, 1 epoch, batch 10 and 100" | tee $OUT/paper.txt
for b in 10 100; do
  /usr/bin/time -f "wall %e s, max rss %M KB" timeout 120 python3 -m mtlshare run recipes/conll2003/paper.toml --out /tmp/p$b mechanism=hard 'data.glove=""' train.device=cuda train.epochs=1 train.batch_size=$b --quiet 2>&1 | tail -6 | tee -a $OUT/paper.txt
  cp /tmp/p$b/metrics.jsonl $OUT/metrics-b$b.jsonl 2>/dev/null
  python3 -c "import json; r=json.load(open('/tmp/p$b/results.json')); print('batch $b', 'train_seconds', r['train_seconds'], 'wall_seconds', r['wall_seconds'])" | tee -a $OUT/paper.txt
done
python3 -c "import torch; print('peak GPU memory (this process only)', torch.cuda.max_memory_allocated())" >/dev/null
grep -c "contiguous chunk" $OUT/*.txt
