-- Dashboard sign-ins (issue 5, part 4). Only the sha256 of the session id is stored: a copy
-- of the database does not let anyone in.
CREATE TABLE sessions (
    id_hash    TEXT PRIMARY KEY,
    -- `admin` or `rep:<id>`
    actor      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
