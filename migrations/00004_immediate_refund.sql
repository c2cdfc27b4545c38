-- +goose Up

-- Immediate refund at purchase (即买即退, DOMAIN.md §6).

-- The ports where an immediate refund completes, per region, effective-dated.
CREATE TABLE designated_ports (
    region_code text NOT NULL REFERENCES regions,
    port_code   text NOT NULL REFERENCES ports,
    valid_from  date NOT NULL,
    valid_to    date,
    PRIMARY KEY (region_code, port_code, valid_from),
    CHECK (valid_to IS NULL OR valid_to > valid_from)
);

-- The mainland working-day calendar the authority maintains: a listed date is a working day
-- or not as its row says (public holidays, adjusted working days 调休); an unlisted date is
-- a working day from Monday to Friday.
CREATE TABLE calendar_days (
    day     date PRIMARY KEY,
    working boolean NOT NULL,
    note    text    NOT NULL DEFAULT ''
);

-- +goose StatementBegin
CREATE FUNCTION is_working_day(d date) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT working FROM calendar_days WHERE day = d), extract(isodow FROM d) < 6)
$$;
-- +goose StatementEnd

-- The date n working days after d.
-- +goose StatementBegin
CREATE FUNCTION add_working_days(d date, n integer) RETURNS date LANGUAGE plpgsql STABLE AS $$
DECLARE
    day date := d;
    left_ integer := n;
BEGIN
    WHILE left_ > 0 LOOP
        day := day + 1;
        IF is_working_day(day) THEN
            left_ := left_ - 1;
        END IF;
    END LOOP;
    RETURN day;
END $$;
-- +goose StatementEnd

-- One prepayment per form, whatever races between refund points happen.
CREATE TABLE prepayments (
    id                  uuid PRIMARY KEY,
    form_id             uuid        NOT NULL UNIQUE REFERENCES forms,
    desk_code           text        NOT NULL REFERENCES desks,
    agency_code         text        NOT NULL REFERENCES agencies,
    region_code         text        NOT NULL REFERENCES regions,
    cashier             text        NOT NULL,
    state               text        NOT NULL CHECK (state IN ('PREPAID', 'COMPLETED', 'CAPTURED', 'RETURNED')),
    agreement_reference text        NOT NULL,
    -- Card data: the acquirer's token, the last four digits and the expiry; never a number.
    card_token          text        NOT NULL,
    card_last4          text        NOT NULL CHECK (card_last4 ~ '^[0-9]{4}$'),
    card_expiry         date        NOT NULL,
    authorized_amount   numeric     NOT NULL CHECK (authorized_amount > 0 AND authorized_amount <= 1000000000000),
    doc_index           bytea       NOT NULL,
    paid_at             timestamptz NOT NULL,
    paid_date           date        NOT NULL,
    fee_rate            numeric     NOT NULL,
    gross_refund        numeric     NOT NULL CHECK (gross_refund > 0),
    fee                 numeric     NOT NULL CHECK (fee >= 0 AND fee <= gross_refund),
    net_refund          numeric     NOT NULL CHECK (net_refund = gross_refund - fee AND net_refund <= authorized_amount),
    committed_date      date        NOT NULL,
    designated_ports    text[]      NOT NULL,
    capture_due         date        NOT NULL CHECK (capture_due > committed_date),
    -- The prepayment's journal transaction, and the one that resolved it.
    txn_id              uuid        NOT NULL UNIQUE REFERENCES journal_txns,
    resolved_txn_id     uuid UNIQUE REFERENCES journal_txns,
    resolved_at         timestamptz,
    CHECK ((state = 'PREPAID') = (resolved_at IS NULL))
);
CREATE INDEX prepayments_document_day ON prepayments (doc_index, paid_date);
CREATE INDEX prepayments_capture_due ON prepayments (capture_due) WHERE state = 'PREPAID';

-- A completed immediate refund is the form's payout, made at the refund point.
ALTER TABLE payouts DROP CONSTRAINT payouts_method_check;
ALTER TABLE payouts ADD CONSTRAINT payouts_method_check CHECK (method IN ('CASH', 'BANK_CARD', 'MOBILE', 'PREPAYMENT'));

-- Instructions to the card acquirer, written in the transaction of the ledger entries
-- that need them and delivered at least once by the dispatcher (the key makes a
-- redelivery harmless).
CREATE TABLE acquirer_outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idem_key        text        NOT NULL UNIQUE,
    prepayment_id   uuid        NOT NULL REFERENCES prepayments,
    kind            text        NOT NULL CHECK (kind IN ('RELEASE', 'CAPTURE', 'PARTIAL_CAPTURE')),
    card_token      text        NOT NULL,
    amount          numeric     NOT NULL CHECK (amount >= 0 AND amount <= 1000000000000),
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text        NOT NULL DEFAULT '',
    delivered_at    timestamptz
);
CREATE INDEX acquirer_outbox_due ON acquirer_outbox (next_attempt_at) WHERE delivered_at IS NULL;

-- What the development acquirer received: one row per instruction key however often it
-- was delivered. There is no real card network here.
CREATE TABLE dev_acquirer_received (
    idem_key    text PRIMARY KEY,
    kind        text        NOT NULL,
    card_token  text        NOT NULL,
    amount      numeric     NOT NULL,
    first_at    timestamptz NOT NULL DEFAULT now(),
    deliveries  integer     NOT NULL DEFAULT 1
);

-- +goose Down
DROP TABLE dev_acquirer_received, acquirer_outbox;
ALTER TABLE payouts DROP CONSTRAINT payouts_method_check;
ALTER TABLE payouts ADD CONSTRAINT payouts_method_check CHECK (method IN ('CASH', 'BANK_CARD', 'MOBILE'));
DROP TABLE prepayments, calendar_days, designated_ports;
DROP FUNCTION add_working_days, is_working_day;
