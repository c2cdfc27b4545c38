-- +goose Up

-- The register of the people and points that hold client certificates: the tax office's
-- officials, customs officers, cashiers, refund points (a desk's own certificate) and
-- agency back-office users. A certificate the CA signed is not enough: its identity URI
-- must be registered here, REGISTERED, and the certificate itself (serial number and
-- public-key hash) bound to it. Stores are registered in stores (their status) and their
-- certificates revoked in revoked_certificates.
CREATE TABLE identities (
    uri          text PRIMARY KEY CHECK (uri ~ '^taxrefund://(authority|customs|desk|agency)/'),
    kind         text        NOT NULL CHECK (kind IN ('OFFICIAL', 'CUSTOMS_OFFICER', 'CASHIER', 'REFUND_POINT', 'AGENCY_USER')),
    -- The office, port, desk or agency, and the person within it ('' for an office or a
    -- desk's own certificate, which name no person).
    party        text        NOT NULL CHECK (party <> ''),
    person       text        NOT NULL,
    status       text        NOT NULL CHECK (status IN ('REGISTERED', 'SUSPENDED', 'REVOKED')),
    effective_at timestamptz NOT NULL,
    reason       text        NOT NULL DEFAULT '',
    changed_by   text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- The certificates each identity may present. A revoked one is listed in
-- revoked_certificates by its serial; the binding stays, for the record.
CREATE TABLE identity_certificates (
    serial        text PRIMARY KEY CHECK (serial ~ '^[0-9a-f]{1,64}$'),
    spki_sha256   bytea       NOT NULL CHECK (length(spki_sha256) = 32),
    uri           text        NOT NULL REFERENCES identities (uri),
    not_after     timestamptz NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now(),
    registered_by text        NOT NULL
);
CREATE INDEX identity_certificates_uri ON identity_certificates (uri);

-- Only the owner (taxrefund_owner, of which the migrating user, who runs `taxrefund
-- certs`, is a member) reads and writes the register; the service roles may only ask
-- about the certificate in front of them, through identity_standing below.
ALTER TABLE identities OWNER TO taxrefund_owner;
ALTER TABLE identity_certificates OWNER TO taxrefund_owner;
ALTER TABLE identities ENABLE ROW LEVEL SECURITY;
ALTER TABLE identities FORCE ROW LEVEL SECURITY;
ALTER TABLE identity_certificates ENABLE ROW LEVEL SECURITY;
ALTER TABLE identity_certificates FORCE ROW LEVEL SECURITY;
CREATE POLICY identities_owner ON identities TO taxrefund_owner USING (true) WITH CHECK (true);
CREATE POLICY identity_certificates_owner ON identity_certificates TO taxrefund_owner USING (true) WITH CHECK (true);

-- The standing of one certificate: UNKNOWN (no such identity), SUSPENDED or REVOKED (the
-- identity's status), UNBOUND (the identity is registered but this certificate — serial
-- and public key — is not its), CERTIFICATE_REVOKED, or REGISTERED.
-- +goose StatementBegin
CREATE FUNCTION identity_standing(p_uri text, p_serial text, p_spki bytea) RETURNS text
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT CASE
        WHEN i.uri IS NULL THEN 'UNKNOWN'
        WHEN i.status <> 'REGISTERED' THEN i.status
        WHEN NOT EXISTS (SELECT 1 FROM identity_certificates c
            WHERE c.serial = p_serial AND c.uri = p_uri AND c.spki_sha256 = p_spki) THEN 'UNBOUND'
        WHEN EXISTS (SELECT 1 FROM revoked_certificates r WHERE r.serial = p_serial) THEN 'CERTIFICATE_REVOKED'
        ELSE 'REGISTERED'
    END
    FROM (SELECT 1) AS one LEFT JOIN identities i ON i.uri = p_uri
$$;
-- +goose StatementEnd
ALTER FUNCTION identity_standing(text, text, bytea) OWNER TO taxrefund_owner;
REVOKE ALL ON FUNCTION identity_standing(text, text, bytea) FROM PUBLIC;
-- Every service role authorizes its callers (taxrefund_app is a member of each).
GRANT EXECUTE ON FUNCTION identity_standing(text, text, bytea) TO taxrefund_store, taxrefund_desk, taxrefund_authority, taxrefund_jobs;

-- +goose Down
DROP FUNCTION identity_standing(text, text, bytea);
DROP TABLE identity_certificates;
DROP TABLE identities;
