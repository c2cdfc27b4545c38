-- +goose Up

-- The authority changes a store's tax credit grade (SetStoreGrade): the column only, as
-- for status and under_review. The change is audited like the others.
GRANT UPDATE (credit_grade) ON stores TO taxrefund_authority;

-- +goose Down
REVOKE UPDATE (credit_grade) ON stores FROM taxrefund_authority;
