#!/bin/bash
# A/B on one machine: the GPU epoch with the Recurrent layer before (old) and after (new) the per-direction cuDNN buffers.
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
mkdir -p ../shared && ln -sfn "$PWD/.devdata" ../shared/data
rm -rf /tmp/old && mkdir -p /tmp/old && cp -r src /tmp/old/ && cp .devdata/trunks_old.py /tmp/old/src/mtlshare/models/trunks.py
one() { # $1 old|new  $2 batch  $3 extra
  if [ "$1" = old ]; then P=/tmp/site:/tmp/old/src; else P=/tmp/site:$PWD/src; fi
  PYTHONPATH=$P timeout 100 python3 -m mtlshare run recipes/conll2003/paper.toml --out /tmp/r-$1-$2-$round mechanism=hard 'data.glove=""' train.device=cuda train.epochs=1 train.batch_size=$2 $3 --quiet > /tmp/r-$1-$2-$round.log 2>&1
  echo "$1 batch $2: $(grep -c 'contiguous chunk' /tmp/r-$1-$2-$round.log) cuDNN copy warnings; $(python3 -c "import json; r=json.load(open('/tmp/r-$1-$2-$round/results.json')); m=[json.loads(l) for l in open('/tmp/r-$1-$2-$round/metrics.jsonl')][-1]; print('train_seconds', r['train_seconds'], 'tokens/s', m['tokens_per_second'], 'test', {t: round(v['test'], 4) for t, v in r['tasks'].items()})")" | tee -a $OUT/ab.txt
}
for round in 1 2; do :
  one new 100; one old 100
  [ $round = 1 ] && { one old 10 data.train_sentences=4000; one new 10 data.train_sentences=4000; }
done
