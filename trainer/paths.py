"""Paths given on the command line, checked before anything is read or written: an empty one (an unset
shell variable: `--out "$RUN"` would otherwise mean the current directory, the repository root), one the
system cannot name (a NUL byte, a component or a whole path over its limits: OSError tracebacks deep in
the trainer otherwise), each refused in one line naming the flag."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

# What POSIX systems allow (Linux, macOS): 255 bytes a component, 4,096 bytes a path (with its NUL).
NAME_MAX, PATH_MAX = 255, 4096


def path_problem(text: str) -> str | None:
    """What is wrong with `text` as a path, or None."""
    if not text.strip():
        return "empty (an unset shell variable?); name a folder"
    if "\0" in text:
        return "contains a NUL byte"
    try:
        encoded = os.fsencode(text)
    except UnicodeError:
        return "cannot be encoded for the file system"
    if len(encoded) >= PATH_MAX:
        return f"{len(encoded):,} bytes long; the system allows paths of at most {PATH_MAX - 1:,}"
    for part in Path(text).parts:
        if len(os.fsencode(part)) > NAME_MAX:
            return f"has a component of {len(os.fsencode(part)):,} bytes; the system allows at most {NAME_MAX}"
    return None


def shown(text: str, limit: int = 80) -> str:
    """A path for an error line: quoted, long ones cut in the middle."""
    text = repr(text)
    return text if len(text) <= limit else f"{text[:limit // 2]}...{text[-limit // 2:]}"


class Refused(str):
    """A path option's value that path_problem refused, kept for a one-line error (refusal) after parsing."""
    flag: str
    problem: str


def guard(parser: argparse.ArgumentParser, *flags: str) -> argparse.ArgumentParser:
    """Make the path options `flags` of a parser keep what path_problem refuses as a Refused value (their
    type otherwise); refusal(args) then names the first."""
    for flag in flags:
        action = parser._option_string_actions.get(flag)  # noqa: SLF001 (argparse keeps no public lookup)
        if action is None or getattr(action.type, "guarded", False):
            continue

        def convert(text: str, kind=action.type or str, flag=flag):
            problem = path_problem(text)
            if problem:
                value = Refused(text)
                value.flag, value.problem = flag, problem
                return value
            return kind(text)
        convert.guarded = True
        action.type = convert
    return parser


def refusal(args: argparse.Namespace) -> str | None:
    """"--out '': empty (...)" for the first refused path option of parsed arguments, or None."""
    for value in vars(args).values():
        if isinstance(value, Refused):
            return f"{value.flag} {shown(str(value))}: {value.problem}"
    return None
