-- Demo data: the two refund blocks, their ports and agencies, a dozen stores and the
-- effective-dated parameters of DOMAIN.md. Store, agency and desk names are DEMO DATA, not
-- real participants. Idempotent: safe to run again.

INSERT INTO regions (code, name) VALUES
    ('SC-CQ', 'Sichuan–Chongqing cross-province immediate refund scheme')
ON CONFLICT DO NOTHING;

INSERT INTO blocks (code, name, city, region_code) VALUES
    ('JFB', 'Jiefangbei–Chaotianmen refund block', 'Chongqing', 'SC-CQ'),
    ('CXL', 'Chunxi Road–Taikoo Li refund block', 'Chengdu', 'SC-CQ')
ON CONFLICT DO NOTHING;

INSERT INTO ports (code, name, city, region_code) VALUES
    ('CKG', 'Chongqing Jiangbei International Airport', 'Chongqing', 'SC-CQ'),
    ('TFU', 'Chengdu Tianfu International Airport', 'Chengdu', 'SC-CQ'),
    ('CTU', 'Chengdu Shuangliu International Airport', 'Chengdu', 'SC-CQ')
ON CONFLICT DO NOTHING;

INSERT INTO agencies (code, name) VALUES
    ('AG-CQ', 'Chongqing refund agency bank (demo)'),
    ('AG-CD', 'Chengdu refund agency bank (demo)')
ON CONFLICT DO NOTHING;
-- Chongqing launched departure refunds on 2018-03-01 (DOMAIN.md §1).
UPDATE agencies SET appointed_on = '2018-03-01' WHERE code = 'AG-CQ';

INSERT INTO desks (code, agency_code, kind, port_code, block_code, name) VALUES
    ('CKG-01', 'AG-CQ', 'AIRPORT', 'CKG', NULL, 'Jiangbei T3 departures refund counter 1 (demo)'),
    ('CKG-02', 'AG-CQ', 'AIRPORT', 'CKG', NULL, 'Jiangbei T3 departures refund counter 2 (demo)'),
    ('TFU-01', 'AG-CD', 'AIRPORT', 'TFU', NULL, 'Tianfu T1 departures refund counter (demo)'),
    ('CTU-01', 'AG-CD', 'AIRPORT', 'CTU', NULL, 'Shuangliu T2 departures refund counter (demo)'),
    ('JFB-RP', 'AG-CQ', 'REFUND_POINT', NULL, 'JFB', 'Jiefangbei immediate refund point (demo)'),
    ('IFS-RP', 'AG-CD', 'REFUND_POINT', NULL, 'CXL', 'Chengdu IFS immediate refund point (demo)')
ON CONFLICT DO NOTHING;

INSERT INTO stores (code, credit_code, name, block_code, credit_grade, immediate_refund, status) VALUES
    ('CQ-JFB-001', '91500103AY4CL12THR', 'Jiefangbei Department Store (demo)', 'JFB', 'A', true, 'ACTIVE'),
    ('CQ-JFB-002', '915001033BJ1XG612X', 'Chaotianmen Silk House (demo)', 'JFB', 'A', true, 'ACTIVE'),
    ('CQ-JFB-003', '91500103DD272HD1T8', 'Hongyadong Crafts (demo)', 'JFB', 'B', false, 'ACTIVE'),
    ('CQ-JFB-004', '91500103J3Y7LLJY1P', 'Raffles City Chongqing Boutique (demo)', 'JFB', 'A', false, 'ACTIVE'),
    ('CQ-JFB-005', '91500103JJC171HU4A', 'Jiefangbei Electronics (demo)', 'JFB', 'M', false, 'ACTIVE'),
    ('CQ-JFB-006', '915001039D4H3J9HTR', 'Bayi Road Tea Shop (demo, suspended)', 'JFB', 'B', false, 'SUSPENDED'),
    ('CD-CXL-001', '91510104M53JJL6B3L', 'Chunxi Road Department Store (demo)', 'CXL', 'A', true, 'ACTIVE'),
    ('CD-CXL-002', '91510104HN2J1K6FM5', 'Taikoo Li Fashion (demo)', 'CXL', 'A', true, 'ACTIVE'),
    ('CD-CXL-003', '91510104HDQAEJXEB6', 'IFS Watch Gallery (demo)', 'CXL', 'A', false, 'ACTIVE'),
    ('CD-CXL-004', '9151010497R5NQ72JX', 'Shu Brocade Workshop (demo)', 'CXL', 'B', false, 'ACTIVE'),
    ('CD-CXL-005', '915101049GFWAPE9KU', 'Chunxi Cosmetics (demo)', 'CXL', 'A', false, 'ACTIVE'),
    ('CD-CXL-006', '9151010423GD5QA4XL', 'Panda Gifts Taikoo Li (demo)', 'CXL', 'M', false, 'ACTIVE')
ON CONFLICT DO NOTHING;

-- DOMAIN.md §3 and §6. The agency fee is contractual and the prepayment cap is a demo value.
INSERT INTO parameters (name, scope, valid_from, value, note) VALUES
    ('min_purchase', '', '2015-01-01', 500.00, 'SAT Announcement 41/2015'),
    ('min_purchase', '', '2025-04-27', 200.00, '商消费发〔2025〕84号'),
    ('refund_rate', '0.13', '2019-04-01', 0.11, 'goods at 13% VAT'),
    ('refund_rate', '0.09', '2019-04-01', 0.08, 'goods at 9% VAT'),
    ('cash_cap', '', '2015-01-01', 10000.00, 'before 商消费发〔2025〕84号'),
    ('cash_cap', '', '2025-04-27', 20000.00, '商消费发〔2025〕84号'),
    ('export_window_days', '', '2015-01-01', 90, 'chinatax.gov.cn'),
    ('agency_fee_rate', 'AG-CQ', '2018-03-01', 0.02, 'contractual fee (demo value)'),
    ('agency_fee_rate', 'AG-CD', '2015-01-01', 0.02, 'contractual fee (demo value)'),
    ('committed_period_days', 'SC-CQ', '2025-07-01', 17, 'Sichuan–Chongqing scheme, July 2025'),
    ('daily_prepay_cap', 'SC-CQ', '2025-07-01', 50000.00, 'DEMO VALUE, not an official figure')
ON CONFLICT DO NOTHING;

-- Immediate refund (DOMAIN.md §6): the Sichuan–Chongqing scheme's designated ports.
INSERT INTO designated_ports (region_code, port_code, valid_from) VALUES
    ('SC-CQ', 'TFU', '2025-07-01'),
    ('SC-CQ', 'CKG', '2025-07-01')
ON CONFLICT DO NOTHING;

-- The working-day calendar, seeded with WEEKENDS ONLY for 2025–2027: public holidays and
-- adjusted working days (调休) are not seeded; the authority adds them (SetCalendarDay).
INSERT INTO calendar_days (day, working, note)
SELECT d::date, false, 'weekend'
  FROM generate_series('2025-01-01'::date, '2027-12-31'::date, '1 day') AS d
 WHERE extract(isodow FROM d) >= 6
ON CONFLICT DO NOTHING;
