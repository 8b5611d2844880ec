-- `restore <session>` and the id-prefix lookup find a session's ops by the thread id in
-- their detail: without this index each was a scan of every op's JSON, about a second at
-- 100,000 ops (benches/retire.rs, restore of one retired session).
CREATE INDEX ops_by_thread ON ops(json_extract(detail, '$.thread_id'));
