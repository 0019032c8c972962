"""Build mapping (the rest of the metadata is in pyproject.toml).

The top-level ``ivr_flows/``, ``scripts_templates/`` and ``config/`` stay where the project's layout puts them
and are shipped inside the wheel as ``callcenter/_data/<name>/`` (read through importlib.resources by
``callcenter.shipped``); every sub-folder becomes a data-only package so its files are packed.
"""

from pathlib import Path

from setuptools import find_namespace_packages, setup

HERE = Path(__file__).resolve().parent
SHIPPED = ("ivr_flows", "scripts_templates", "config")
DATA_PATTERNS = ["*.yaml", "*.yml", "*.toml", "*.conf", "*.md"]

data_dirs = {}
for top in SHIPPED:
    for folder in [HERE / top, *sorted(p for p in (HERE / top).rglob("*") if p.is_dir())]:
        if folder.name == "__pycache__":
            continue
        rel = folder.relative_to(HERE)
        data_dirs["callcenter._data." + ".".join(rel.parts)] = rel.as_posix()

setup(
    packages=[*find_namespace_packages(include=["callcenter", "callcenter.*"], exclude=["*.__pycache__"]),
              *sorted(data_dirs)],
    package_dir=data_dirs,
    package_data={
        "": ["*.yaml", "*.yml", "*.html", "*.css", "*.js", "*.ini", "*.mako", "*.toml", "*.txt", "*.csv", "*.png",
               "LICENSE.*", "NOTICE.*"],
        **{name: DATA_PATTERNS for name in data_dirs},
    },
)
