"""Tools: the scripts that made the artifacts shipped inside the packages (BLER table,
quantization table, lm-eval tasks, tiny and text MoE models, hidden-state CDDM, pretrained
codecs and CDDM, hyperprior ladders). Each artifact names the command that made it."""
