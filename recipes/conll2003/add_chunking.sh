#!/usr/bin/env bash
# Adding a task to a trained model on CoNLL-2003 (quick profile data and schedule): train POS
# and NER together, then add chunking with `mtlshare add-task` (hard sharing: a new head on
# the frozen trunk; sparse sharing: a new mask over the trained base network, the trained
# masks' weights frozen), against chunking trained alone for the same 5 epochs.
#
#   bash recipes/conll2003/add_chunking.sh runs/add-chunking
#
# MTLSHARE names the command (default: mtlshare on PATH).
set -euo pipefail
out=${1:-runs/add-chunking}
here=$(cd "$(dirname "$0")" && pwd)
mtlshare=${MTLSHARE:-mtlshare}
for mech in hard sparse; do
  $mtlshare run "$here/quick.toml" mechanism=$mech 'tasks=["pos","ner"]' --out "$out/$mech-pos-ner"
  $mtlshare add-task "$out/$mech-pos-ner" "$here/quick.toml" 'tasks=["chunk"]' --out "$out/$mech-add-chunk"
done
$mtlshare run "$here/quick.toml" 'tasks=["chunk"]' --out "$out/chunk-alone"
