-- tollgate audit store (SQLite): the request headers of each HTTP request.
--
-- A JSON array of [name, value] pairs in the order the client sent them, names lowercase.
-- Sensitive values (credentials, cookies, the target's injected credential header and its
-- `redact_headers`) are "[redacted]", never stored; in other values URLs keep query names only
-- and lose any user:password@, then values are masked by the target's detectors and cut at
-- 512 bytes; at most 8 KiB per request, then a last pair ["…", "N more
-- not recorded"]. NULL when the target records no headers (`record_headers = false`) and in
-- rows written before this migration.
ALTER TABLE requests ADD COLUMN headers TEXT;
