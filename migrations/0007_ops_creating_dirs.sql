-- Every inverse move tidies the folders codex-maint created, so each `undo` and `restore`
-- reads the `created_dirs` of every op that made one. Without this index that was a scan
-- of every op's JSON: 0.36 s of a 0.95 s `restore` of one session at 100,000 retired
-- (benches/retire.rs). Few ops create folders, so the index stays small.
CREATE INDEX IF NOT EXISTS ops_creating_dirs ON ops(id)
    WHERE json_array_length(json_extract(detail, '$.created_dirs')) > 0;
