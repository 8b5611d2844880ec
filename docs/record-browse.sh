#!/usr/bin/env bash
# Records docs/browse-session.md: `browse` drawn by its own view code (ratatui's TestBackend,
# 80x24) on a synthetic home at a fixed clock, keys pressed as a person would. The recorder is
# the test `the_recorded_browse_session_is_what_browse_draws_now` in tests/docs_reference.rs;
# without UPDATE_DOCS=1 that test fails when the committed recording is stale. Copy the first
# screen into the README's "browse" block when it changes (the test checks that too).
set -euo pipefail
cd "$(dirname "$0")/.."
UPDATE_DOCS=1 cargo test --locked --test docs_reference the_recorded_browse_session
