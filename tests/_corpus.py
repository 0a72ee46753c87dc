"""Shared checks for the fuzz and fault corpus (issue 16).

Every case in ``tests/fuzz`` feeds one bad input, crash or attack to a real entry point (the
CLI through Typer's runner, the model server and the trigger service through their ASGI apps,
the registry through its public API) and asserts the outcome is *clear*: a non-zero exit or a
4xx whose message names the input and what is wrong, no traceback, nothing silently accepted,
nothing lost. The closing note's table counts these cases: a failing case is a traceback, a
silent wrong or a data loss, so the suite passing means those columns are 0.
"""

from __future__ import annotations

import re
from typing import Any

from click.testing import Result


def assert_clear_cli_error(result: Result, *names: str) -> str:
    """Assert a CLI run failed cleanly with a message naming every string in ``names``.

    Args:
        result: What ``typer.testing.CliRunner().invoke`` returned.
        names: Substrings the error must contain (the input, and what is wrong with it),
            compared case-insensitively.

    Returns:
        The combined output, for further checks.
    """
    output = result.output  # stdout and stderr, as the user sees them (click >= 8.2)
    assert result.exit_code not in (0, None), f"accepted silently:\n{output}"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"traceback: {result.exception!r}\n{output}") from result.exception
    assert "Traceback" not in output, output
    flat = _flatten(output)  # rich wraps usage errors in a box as wide as the terminal
    for name in names:
        assert _flatten(name) in flat, f"error does not name {name!r}:\n{output}"
    return output


def _flatten(text: str) -> str:
    """Lower-case ``text`` with rich's box borders dropped and all whitespace removed."""
    return re.sub(r"[\s\u2500-\u257f]+", "", text).lower()


def assert_client_error(response: Any, *names: str, status: int | None = None) -> str:
    """Assert an HTTP answer is a 4xx whose body names every string in ``names``.

    Args:
        response: An ``httpx``/Starlette test-client response.
        names: Substrings the body must contain, compared case-insensitively.
        status: The exact status expected, when one is (e.g. 413).

    Returns:
        The body text.
    """
    body = response.text
    assert 400 <= response.status_code < 500, f"{response.status_code}: {body[:500]}"
    if status is not None:
        assert response.status_code == status, f"{response.status_code}: {body[:500]}"
    assert "Traceback" not in body, body[:2000]
    for name in names:
        assert name.lower() in body.lower(), f"answer does not name {name!r}: {body[:500]}"
    return body
