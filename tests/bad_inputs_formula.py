from bad_inputs_common import ApiCase, CliCase

CASES = [
    CliCase("formula-frontier-missing", "formula", ["--c", "0.3", "--frontier", "{ws}/nope.csv"], "does not exist"),
    CliCase("formula-c-nan", "formula", ["--c", "nan"], "--c"),
]
