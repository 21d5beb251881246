"""Export profiles shipped with the package: `dsp-deploy export --profile NAME` (NAME.json here)."""
