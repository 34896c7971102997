"""Hostile inputs: values that overflow, are not finite, have the wrong type, repeat a key, nest without
end or name a folder as a file are refused before any work, as one line ``error: ...`` naming the
field or flag, with exit code 2 and nothing written; a property-based test feeds ``pivf config show``
generated config files and ``--set`` overrides and accepts only that line or a valid config."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import traceback
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from pivf.cli.main import app
from pivf.core.kernel.config import bracket_depth

DEEP = "[" * 10_000 + "]" * 10_000
#: config files the cases below name, written into the working folder
FILES = {
    "huge.yaml": "training:\n  physics_lr: 1e400\n",
    "section.yaml": "data: 1\n",
    "twice.yaml": "training:\n  lr: 0.001\n  epochs: 3\n  lr: 0.002\n",
    "twice_section.yaml": "training: {lr: 0.001}\ndata: {dt: 0.1}\ntraining: {epochs: 3}\n",
    "deep.yaml": f"data:\n  task_params:\n    a: {DEEP}\n",
    "deep.toml": f"a = {DEEP}\n",
    "bool.json": '{"training": {"epochs": true}}',
}

# (args, the exact line on stderr)
CASES = {
    "physics_lr 1e400": (["config", "show", "--set", "training.physics_lr=1e400"],
                         "error: training.physics_lr: must be a finite number, got inf"),
    "max_time 1e400": (["config", "show", "--set", "training.max_time=1e400"],
                       "error: training.max_time: must be a finite number, got inf"),
    "lr 1e400": (["train", "--set", "training.lr=1e400"], "error: training.lr: must be a finite number, got inf"),
    "lr -1e400": (["config", "show", "--set", "training.lr=-1.5E+400"],
                  "error: training.lr: must be a finite number, got -inf"),
    "dt 1e400": (["train", "--set", "data.dt=1e400"], "error: data.dt: must be a finite number, got inf"),
    "physics k 1e400": (["config", "show", "--set", "physics.k=1e400"],
                        "error: physics.k: must be a finite number, got inf"),
    "integer beyond a float": (["config", "show", "--set", f"physics.k={10**400}"],
                               "error: physics.k: must be a finite number, got an integer of 1329 bits"),
    "a --max-time of 400 digits": (["config", "show", "--max-time", "9" * 400 + "h"],
                                   "error: training.max_time: must be a finite number, got inf"),
    "1e400 in a file": (["config", "show", "--config", "huge.yaml"],
                        "error: config file huge.yaml: training.physics_lr: must be a finite number, got inf"),
    "section set to a number": (["config", "show", "--set", "data=1"],
                                "error: --set: data is a section and must be a mapping of its fields (data.FIELD), "
                                "got 1"),
    "section emptied": (["config", "show", "--set", "training="],
                        "error: --set: training is a section and must be a mapping of its fields (training.FIELD), "
                        "got ''"),
    "section a number in a file": (["config", "show", "--config", "section.yaml"],
                                   "error: config file section.yaml: data is a section and must be a mapping of its "
                                   "fields (data.FIELD), got 1"),
    "epochs true": (["config", "show", "--set", "training.epochs=true"],
                    "error: config: training.epochs: Input should be a valid integer (got True)"),
    "epochs true in JSON": (["config", "show", "--config", "bool.json"],
                            "error: config: training.epochs: Input should be a valid integer (got True)"),
    "epochs a quoted number": (["config", "show", "--set", "training.epochs='5'"],
                               "error: config: training.epochs: Input should be a valid integer (got '5')"),
    "plugin number true": (["config", "show", "--set", "physics.k=true"],
                           "error: physics 'spring': k: Input should be a valid number (got True)"),
    "substeps 1e8": (["config", "show", "--set", "integrator.substeps=100000000"],
                     "error: integrator 'euler': substeps: Input should be less than or equal to 1000 "
                     "(got 100000000)"),
    "substeps of rk4 1e8": (["config", "show", "--integrator", "rk4", "--set", "integrator.substeps=100000000"],
                            "error: integrator 'rk4': substeps: Input should be less than or equal to 1000 "
                            "(got 100000000)"),
    "substeps written 1e8": (["config", "show", "--set", "integrator.substeps=1e8"],
                             "error: integrator 'euler': substeps: Input should be a valid integer (got 100000000.0)"),
    "simulation substeps 1e8": (["data", "generate", "spring_color", "--out", "{work}/data", "--set",
                                 "substeps=100000000"],
                                "error: task 'spring_color': substeps: Input should be less than or equal to 10000 "
                                "(got 100000000)"),
    "MuJoCo substeps "
    "1e8": (["data", "generate", "mujoco_spring", "--out", "{work}/data", "--set", "substeps=100000000"],
                            "error: task 'mujoco_spring': substeps: Input should be less than or equal to 10000 "
                            "(got 100000000)"),
    "tolerance 1e-300": (["config", "show", "--integrator", "dopri5", "--set", "integrator.rtol=1e-300"],
                         "error: integrator 'dopri5': rtol: Input should be greater than or equal to 0.000000000001 "
                         "(got 1e-300)"),
    "key twice": (["config", "show", "--config", "twice.yaml"],
                  "error: config file twice.yaml: key 'lr' is given twice (lines 2 and 4); keep one"),
    "section twice": (["config", "show", "--config", "twice_section.yaml"],
                      "error: config file twice_section.yaml: key 'training' is given twice (lines 1 and 3); "
                      "keep one"),
    "key twice in --set": (["config", "show", "--set", "data.task_params={{a: 1, a: 2}}"],
                           "error: --set data.task_params: key 'a' is given twice (lines 1 and 1); keep one"),
    "10,000 nested lists": (["config", "show", "--config", "deep.yaml"],
                            "error: config file deep.yaml is nested too deeply (a config is at most 16 levels deep)"),
    "10,000 nested TOML arrays": (["config", "show", "--config", "deep.toml"],
                                  "error: config file deep.toml is nested too deeply (a config is at most 16 levels "
                                  "deep)"),
    "600 nested lists by --set": (["config", "show", "--set", "data.task_params=" + "[" * 600 + "]" * 600],
                                     "error: --set data.task_params is nested too deeply (a config is at most 16 "
                                     "levels deep)"),
    "40 nested lists": (["config", "show", "--set", "data.task_params=" + "[" * 40 + "]" * 40],
                        "error: --set data.task_params is nested too deeply (a config is at most 16 levels deep)"),
    "a date as a key": (["config", "show", "--set", "data.task_params={{2020-01-01: 1}}"],
                        "error: --set: key 2020-01-01 in data.task_params must be a name (text), not date"),
    "a lone surrogate": (["config", "show", "--set", 'logging.run_name="\\ud800"'],
                         "error: --set: logging.run_name is not valid text (an unpaired surrogate, or bytes that are "
                         "not UTF-8)"),
    "an argument not UTF-8": (["config", "show", "--task", "spring\udcff"],
                              "error: --task: data.task is not valid text (an unpaired surrogate, or bytes that are "
                              "not UTF-8)"),
    "rollout --speed nan": (["rollout", "{work}/run", "--speed", "nan"], "error: --speed: must be a finite number, "
                                                                         "got nan"),
    "rollout --speed inf": (["rollout", "{work}/run", "--speed", "inf"], "error: --speed: must be a finite number, "
                                                                         "got inf"),
    "control --goal nan": (["control", "{work}/run", "--goal", "nan"], "error: --goal: must be a finite number, got "
                                                                       "nan"),
    "control --goal inf": (["control", "{work}/run", "--goal", "inf"], "error: --goal: must be a finite number, got "
                                                                       "inf"),
    "control --spread inf": (["control", "{work}/run", "--spread", "inf"],
                             "error: --spread: must be a finite number, got inf"),
    "control --edit nan": (["control", "{work}/run", "--edit", "actuation=.nan"],
                           "error: --edit actuation: must be a finite number, got nan"),
    "control --task-set 1e400": (["control", "{work}/run", "--task-set", "gravity=1e400"],
                                 "error: --task-set gravity: must be a finite number, got inf"),
    "control --out a folder": (["control", "{work}/run", "--out", "{work}"],
                               "error: --out: {work} is a folder; name the JSON file to write"),
    "control --filmstrip a folder": (["control", "{work}/run", "--filmstrip", "{work}"],
                                     "error: --filmstrip: {work} is a folder; name the PNG file to write"),
    "control --out under a file": (["control", "{work}/run", "--out", "twice.yaml/result.json"],
                                   "error: --out: twice.yaml is a file, so twice.yaml/result.json cannot be written"),
    "rollout --out under a file": (["rollout", "{work}/run", "--out", "twice.yaml/rollout.png"],
                                   "error: --out: twice.yaml is a file, so twice.yaml/rollout.png cannot be written"),
    "generate --set nan": (["data", "generate", "spring_color", "--out", "{work}/data", "--set", "noise_std=.nan"],
                           "error: --set noise_std: must be a finite number, got nan"),
}


def files_under(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


@pytest.mark.parametrize("case", CASES)
def test_hostile_input_is_one_exact_line_exit_2_and_writes_nothing(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    args, expected = CASES[case]
    before = files_under(tmp_path)
    result = CliRunner().invoke(app, [arg.format(work=tmp_path) for arg in args])
    assert (result.exit_code, result.stderr, result.stdout) == (2, expected.format(work=tmp_path) + "\n", ""), \
        result.output
    assert files_under(tmp_path) == before


@pytest.mark.slow(seconds=5)
def test_an_empty_mujoco_gl_is_unset_not_four_glfw_lines():
    env = {**os.environ, "MUJOCO_GL": "", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "pivf.cli", "plugins", "--kind", "task"], capture_output=True,
                            text=True, env=env, timeout=300)
    rows = [line for line in result.stdout.splitlines() if line.split()[1:2] == ["mujoco_pendulum"]]
    assert (result.returncode, result.stderr, len(rows)) == (0, "", 1)
    assert "glfw" not in rows[0].lower()


# --- generated configs: a valid config or one line ----------------------------------------------------

#: fields of each section with values that fit them (YAML text); "unknown" fits nowhere
FIELDS = {
    "data": {"task": ["spring_color", "pendulum"], "dt": ["0.1", "1e-1"], "image_size": ["32"], "seed": ["3"],
             "path": ["null"], "task_params": ["{}"]},
    "training": {"lr": ["0.001", "2e-3", "1"], "epochs": ["3", "0"], "steps": ["10", "null"], "batch_size": ["10"],
                 "physics_lr": ["0.01", "null"], "max_time": ["60", "1.5e3", "null"], "seed": ["7"]},
    "logging": {"run_name": ["x", "null"], "tensorboard": ["false"], "log_every": ["5"]},
    "physics": {"name": ["spring", "gravity"], "k": ["2.5", "3"]},
    "integrator": {"name": ["euler", "leapfrog", "rk4", "dopri5"], "substeps": ["3", "1000"], "rtol": ["1e-6"]},
    "objective": {"name": ["paig"]},
    "trainig": {"lr": ["0.001"]},
}
#: scalars as YAML text: overflowing, non-finite, booleans spelled both ways, dates (one impossible), hex, ...
RAW = ["1e400", "-1E+400", "1e-3", "1.0e-05", ".inf", "-.inf", ".nan", "true", "false", "yes", "no", "null", "~",
       "0x1F", "1_000", "2020-13-45", "2020-01-01", "'3'", "9" * 30, "-" + "9" * 400, "1e308", "spring", "euler",
       "rk4", "dopri5", "[]", "{}", '""', "-0.0", "1:30", "*undefined", "&anchor 1", "!!python/object:os.system x",
       '"\\ud800"', "{2020-01-01: 1}", "{1: 2}", "{null: 3}", "{true: 4}", "!!binary aGk=", "!!set {a, b}"]


def flow(value) -> str:
    """A generated value as YAML flow text: a list of pairs is a mapping (keys may repeat)."""
    if isinstance(value, str):
        return value
    if isinstance(value, tuple):
        return "{" + ", ".join(f"{key}: {flow(item)}" for key, item in value) + "}"
    return "[" + ", ".join(flow(item) for item in value) + "]"


def number_text(x: float) -> str:
    return ".nan" if math.isnan(x) else (".inf" if x > 0 else "-.inf") if math.isinf(x) else repr(x)


scalars = st.one_of(st.sampled_from(RAW), st.integers(-2**1100, 2**1100).map(str), st.booleans().map(str),
                    st.floats().map(number_text), st.text(max_size=6).map(json.dumps),
                    st.integers(10, 60).map(lambda n: "[" * n + "]" * n))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=6)


def value_of(section: str, field: str):
    """YAML text for ``section.field``: a fitting value six times in ten, else a hostile one."""
    fitting = st.sampled_from(FIELDS[section].get(field, ["1"]))
    return st.integers(0, 9).flatmap(lambda n: fitting if n < 6 else values.map(flow))


def fields_of(section: str):
    """A section's (field, value) pairs, unknown fields among them."""
    pair = st.sampled_from([*FIELDS[section], "unknown", "2020-01-01", "7", "null"]).flatmap(
        lambda field: st.tuples(st.just(field), value_of(section, field)))
    return st.lists(pair, max_size=3, unique_by=lambda item: item[0]).map(tuple)


sections = st.sampled_from(list(FIELDS)).flatmap(
    lambda section: st.tuples(st.just(section), st.integers(0, 9).flatmap(
        lambda n: fields_of(section) if n else scalars)))
#: a config file: a mapping of sections, one time in ten something else
configs = st.integers(0, 9).flatmap(
    lambda n: st.lists(sections, max_size=4, unique_by=lambda item: item[0]).map(tuple) if n else scalars)
#: ``--set`` items: a section's field (or the section itself) = a value, or any text
assignments = st.sampled_from([(section, field) for section in FIELDS for field in [*FIELDS[section], ""]]).flatmap(
    lambda key: value_of(*key).map(lambda value: f"{'.'.join(filter(None, key))}={value}"))
overrides = st.lists(st.integers(0, 9).flatmap(lambda n: assignments if n else st.text(max_size=12)), max_size=3)


def valid_or_one_line(result) -> None:
    """Exit 0 with a config printed, or exit 2 with one ``error:`` line and nothing else."""
    crash = "".join(traceback.format_exception(*result.exc_info)) if result.exc_info else ""
    if result.exit_code == 0:
        assert {"data", "training", "physics"} <= set(yaml.safe_load(result.stdout)), result.stdout
    else:
        lines = result.stderr.splitlines()
        assert (result.exit_code, len(lines), lines[0][:7] if lines else "") == (2, 1, "error: "), \
            result.output + crash


@settings(max_examples=100, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=configs, sets=overrides)
def test_generated_configs_and_overrides_are_valid_or_one_line(config, sets, tmp_path):
    path = tmp_path / "generated.yaml"
    path.write_text(flow(config) + "\n")
    args = ["config", "show", "--config", str(path)] + [arg for item in sets for arg in ("--set", item)]
    valid_or_one_line(CliRunner().invoke(app, args))


def test_nesting_is_counted_outside_quoted_strings_only():
    """The depth check before parsing (whatever the interpreter's recursion limit) counts brackets of
    the config's structure, not those inside a string value."""
    assert bracket_depth("{a: [1, [2, {b: 3}]]}") == 4
    assert bracket_depth("a: '" + "[" * 40 + "'") == 0
    assert bracket_depth('a: "\\"' + "[" * 40 + '"') == 0  # an escaped quote does not end the string
    assert bracket_depth("a: [1]\nb: [[2]]") == 2
