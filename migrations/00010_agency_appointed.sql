-- +goose Up

-- The day an agency was appointed: no settlement declaration may be for a month before it
-- (DeclareMonth answers FAILED_PRECONDITION). The default is the national departure tax
-- refund scheme's start (SAT Announcement No. 41 of 2015, in force 2015-01-01): no agency
-- declares before it.
ALTER TABLE agencies ADD COLUMN appointed_on date NOT NULL DEFAULT '2015-01-01'
    CHECK (appointed_on >= '2015-01-01');

-- +goose Down
ALTER TABLE agencies DROP COLUMN appointed_on;
