"""BFCL's single-turn Python categories as toolbench tasks: `importer` reads BFCL's data files into
task records that carry their own functions and acceptable answers; `checker` scores answers to
them by BFCL's AST matching rules. bfcl-eval itself is never imported (it pins old numpy and many
provider SDKs): only its data files are read."""
