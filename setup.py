"""Packaging that pyproject.toml cannot say: the top-level ``templates/`` folder (the
project's layout keeps it there) ships inside the package as ``mailer._templates``, for
wheel and editable installs alike. Everything else (package data included) is in pyproject.toml."""

from setuptools import find_namespace_packages, setup

setup(
    packages=[*find_namespace_packages(include=["mailer", "mailer.*"]), "mailer._templates"],
    package_dir={"mailer._templates": "templates"},
)
