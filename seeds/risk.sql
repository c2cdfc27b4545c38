-- The risk rules' thresholds for customs (DOMAIN.md §8a, internal/risk): suggested values,
-- DEMO VALUES, not official figures; the authority sets its own with SetParameter. Loaded
-- by `taxrefund seed -risk-rules`, not by the plain seed: with them, a form confirmed less
-- than an hour after issuance is RED, which the walkthrough and the load generator (that
-- confirm at once) would meet on every form. Idempotent: safe to run again.

INSERT INTO parameters (name, scope, valid_from, value, note) VALUES
    ('risk_velocity_days', '', '2025-01-01', 7, 'velocity window, days (DEMO VALUE)'),
    ('risk_velocity_forms', '', '2025-01-01', 3, 'more forms than this in the window is RED (DEMO VALUE)'),
    ('risk_velocity_amount', '', '2025-01-01', 50000.00, 'more CNY than this in the window is RED (DEMO VALUE)'),
    ('risk_split_margin', '', '2025-01-01', 50.00, '"just above the minimum": at most minimum + this (DEMO VALUE)'),
    ('risk_split_forms', '', '2025-01-01', 2, 'this many such forms at one store on one day is RED (DEMO VALUE)'),
    ('risk_serial_threshold', '', '2025-01-01', 50000.00, 'a line of this or more needs its serial number (DEMO VALUE)'),
    ('risk_stay_margin_days', '', '2025-01-01', 7, 'RED within this many days of the 183-day limit (DEMO VALUE)'),
    ('risk_min_age_minutes', '', '2025-01-01', 60, 'RED when confirmed sooner after issuance (DEMO VALUE)')
ON CONFLICT DO NOTHING;
