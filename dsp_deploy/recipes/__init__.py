"""Training recipes shipped with the package: `--recipe NAME` (NAME.json here) in train, prune, finetune."""
