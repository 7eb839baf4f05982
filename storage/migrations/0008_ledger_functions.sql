-- dialects: postgres
-- The plain reserve, settle and void as one function call each (one round trip), replacing
-- 0002's functions. The bodies are generated from the statements Python runs:
-- `python -m storage.ledger.plpgsql` (tests/storage/test_plpgsql.py checks they match).
DROP FUNCTION IF EXISTS ledger_reserve_fast(TEXT, BIGINT, TEXT, TEXT, TEXT, TEXT, BIGINT, BIGINT,
    INTEGER, DOUBLE PRECISION, DOUBLE PRECISION, BIGINT[]);
DROP FUNCTION IF EXISTS ledger_release_fast(TEXT, TEXT, BIGINT, DOUBLE PRECISION, TEXT);

-- Every reservation updates its accounts: leave room on each page for the new row versions,
-- so that updates stay on their page (HOT) and touch no index.
ALTER TABLE accounts SET (fillfactor = 50);
ALTER TABLE starts SET (fillfactor = 70);

CREATE OR REPLACE FUNCTION ledger_reserve(
    p_key TEXT, p_amount BIGINT, p_user TEXT, p_server TEXT, p_model TEXT, p_note TEXT,
    p_day BIGINT, p_month BIGINT, p_stripe INTEGER, p_now DOUBLE PRECISION, p_second BIGINT,
    p_caps BIGINT[]
) RETURNS VOID LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    n BIGINT;
    scopes BIGINT := CASE WHEN p_server IS NULL THEN 2 ELSE 3 END;
BEGIN
    INSERT INTO holds (key, status, amount_micros, settled_micros, user_id, server_id, model, note, day_start, month_start, stripe, created_at, updated_at) VALUES (p_key, 'held', p_amount, 0, p_user, p_server, p_model, p_note, p_day, p_month, p_stripe, p_now, p_now) ON CONFLICT (key) DO NOTHING;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'ledger: key seen before' USING ERRCODE = 'LG001';
    END IF;
    INSERT INTO entries (at, key, kind, amount_micros, user_id, server_id, model, note) VALUES (p_now, p_key, 'reserve', p_amount, p_user, p_server, p_model, p_note);
    INSERT INTO accounts AS a (scope_kind, scope_id, stripe, day_start, day_micros, day_held, month_start, month_micros, month_held, running, held_micros) SELECT v.kind, v.id, v.stripe, CAST(p_day AS BIGINT), CAST(p_amount AS BIGINT), CAST(p_amount AS BIGINT), CAST(p_month AS BIGINT), CAST(p_amount AS BIGINT), CAST(p_amount AS BIGINT), 1, CAST(p_amount AS BIGINT) FROM (SELECT 1 AS rank, 'user' AS kind, CAST(p_user AS TEXT) AS id, 0 AS stripe UNION ALL SELECT 2, 'server', CAST(p_server AS TEXT), 0 UNION ALL SELECT 3, 'global', '*', CAST(p_stripe AS INTEGER)) AS v WHERE v.id IS NOT NULL AND (CASE WHEN v.kind = 'global' THEN (CASE v.kind WHEN 'user' THEN CAST(p_caps[1] AS BIGINT) WHEN 'server' THEN CAST(p_caps[2] AS BIGINT) ELSE CAST(p_caps[3] AS BIGINT) END) IS NULL AND (CASE v.kind WHEN 'user' THEN CAST(p_caps[4] AS BIGINT) WHEN 'server' THEN CAST(p_caps[5] AS BIGINT) ELSE CAST(p_caps[6] AS BIGINT) END) IS NULL AND (CASE v.kind WHEN 'user' THEN CAST(p_caps[7] AS BIGINT) WHEN 'server' THEN CAST(p_caps[8] AS BIGINT) ELSE CAST(p_caps[9] AS BIGINT) END) IS NULL ELSE ((CASE v.kind WHEN 'user' THEN CAST(p_caps[1] AS BIGINT) WHEN 'server' THEN CAST(p_caps[2] AS BIGINT) ELSE CAST(p_caps[3] AS BIGINT) END) IS NULL OR CAST(p_amount AS BIGINT) <= (CASE v.kind WHEN 'user' THEN CAST(p_caps[1] AS BIGINT) WHEN 'server' THEN CAST(p_caps[2] AS BIGINT) ELSE CAST(p_caps[3] AS BIGINT) END)) AND ((CASE v.kind WHEN 'user' THEN CAST(p_caps[4] AS BIGINT) WHEN 'server' THEN CAST(p_caps[5] AS BIGINT) ELSE CAST(p_caps[6] AS BIGINT) END) IS NULL OR CAST(p_amount AS BIGINT) <= (CASE v.kind WHEN 'user' THEN CAST(p_caps[4] AS BIGINT) WHEN 'server' THEN CAST(p_caps[5] AS BIGINT) ELSE CAST(p_caps[6] AS BIGINT) END)) AND ((CASE v.kind WHEN 'user' THEN CAST(p_caps[7] AS BIGINT) WHEN 'server' THEN CAST(p_caps[8] AS BIGINT) ELSE CAST(p_caps[9] AS BIGINT) END) IS NULL OR 1 <= (CASE v.kind WHEN 'user' THEN CAST(p_caps[7] AS BIGINT) WHEN 'server' THEN CAST(p_caps[8] AS BIGINT) ELSE CAST(p_caps[9] AS BIGINT) END)) END OR EXISTS (SELECT 1 FROM accounts e WHERE e.scope_kind = v.kind AND e.scope_id = v.id AND e.stripe = v.stripe)) ORDER BY v.rank ON CONFLICT (scope_kind, scope_id, stripe) DO UPDATE SET day_micros = CASE WHEN a.day_start = p_day THEN a.day_micros ELSE 0 END + CAST(p_amount AS BIGINT), day_held = CASE WHEN a.day_start = p_day THEN a.day_held ELSE 0 END + CAST(p_amount AS BIGINT), day_share = CASE WHEN a.day_start = p_day THEN a.day_share ELSE NULL END, day_start = CAST(p_day AS BIGINT), month_micros = CASE WHEN a.month_start = p_month THEN a.month_micros ELSE 0 END + CAST(p_amount AS BIGINT), month_held = CASE WHEN a.month_start = p_month THEN a.month_held ELSE 0 END + CAST(p_amount AS BIGINT), month_share = CASE WHEN a.month_start = p_month THEN a.month_share ELSE NULL END, month_start = CAST(p_month AS BIGINT), running = a.running + 1, held_micros = a.held_micros + CAST(p_amount AS BIGINT) WHERE a.day_start <= CAST(p_day AS BIGINT) AND a.month_start <= CAST(p_month AS BIGINT) AND ((CASE WHEN a.daily_cap IS NULL THEN CASE a.scope_kind WHEN 'user' THEN CAST(p_caps[1] AS BIGINT) WHEN 'server' THEN CAST(p_caps[2] AS BIGINT) ELSE CAST(p_caps[3] AS BIGINT) END WHEN a.daily_cap < 0 THEN NULL ELSE a.daily_cap END) IS NULL OR CASE WHEN a.scope_kind = 'global' THEN a.day_start = p_day AND a.day_share_of = (CASE WHEN a.daily_cap IS NULL THEN CASE a.scope_kind WHEN 'user' THEN CAST(p_caps[1] AS BIGINT) WHEN 'server' THEN CAST(p_caps[2] AS BIGINT) ELSE CAST(p_caps[3] AS BIGINT) END WHEN a.daily_cap < 0 THEN NULL ELSE a.daily_cap END) AND a.day_micros + CAST(p_amount AS BIGINT) <= a.day_share ELSE CASE WHEN a.day_start = p_day THEN a.day_micros ELSE 0 END + CAST(p_amount AS BIGINT) <= (CASE WHEN a.daily_cap IS NULL THEN CASE a.scope_kind WHEN 'user' THEN CAST(p_caps[1] AS BIGINT) WHEN 'server' THEN CAST(p_caps[2] AS BIGINT) ELSE CAST(p_caps[3] AS BIGINT) END WHEN a.daily_cap < 0 THEN NULL ELSE a.daily_cap END) END) AND ((CASE WHEN a.monthly_cap IS NULL THEN CASE a.scope_kind WHEN 'user' THEN CAST(p_caps[4] AS BIGINT) WHEN 'server' THEN CAST(p_caps[5] AS BIGINT) ELSE CAST(p_caps[6] AS BIGINT) END WHEN a.monthly_cap < 0 THEN NULL ELSE a.monthly_cap END) IS NULL OR CASE WHEN a.scope_kind = 'global' THEN a.month_start = p_month AND a.month_share_of = (CASE WHEN a.monthly_cap IS NULL THEN CASE a.scope_kind WHEN 'user' THEN CAST(p_caps[4] AS BIGINT) WHEN 'server' THEN CAST(p_caps[5] AS BIGINT) ELSE CAST(p_caps[6] AS BIGINT) END WHEN a.monthly_cap < 0 THEN NULL ELSE a.monthly_cap END) AND a.month_micros + CAST(p_amount AS BIGINT) <= a.month_share ELSE CASE WHEN a.month_start = p_month THEN a.month_micros ELSE 0 END + CAST(p_amount AS BIGINT) <= (CASE WHEN a.monthly_cap IS NULL THEN CASE a.scope_kind WHEN 'user' THEN CAST(p_caps[4] AS BIGINT) WHEN 'server' THEN CAST(p_caps[5] AS BIGINT) ELSE CAST(p_caps[6] AS BIGINT) END WHEN a.monthly_cap < 0 THEN NULL ELSE a.monthly_cap END) END) AND ((CASE WHEN a.concurrent_cap IS NULL THEN CASE a.scope_kind WHEN 'user' THEN CAST(p_caps[7] AS BIGINT) WHEN 'server' THEN CAST(p_caps[8] AS BIGINT) ELSE CAST(p_caps[9] AS BIGINT) END WHEN a.concurrent_cap < 0 THEN NULL ELSE a.concurrent_cap END) IS NULL OR CASE WHEN a.scope_kind = 'global' THEN a.running_share_of = (CASE WHEN a.concurrent_cap IS NULL THEN CASE a.scope_kind WHEN 'user' THEN CAST(p_caps[7] AS BIGINT) WHEN 'server' THEN CAST(p_caps[8] AS BIGINT) ELSE CAST(p_caps[9] AS BIGINT) END WHEN a.concurrent_cap < 0 THEN NULL ELSE a.concurrent_cap END) AND a.running + 1 <= a.running_share ELSE a.running + 1 <= (CASE WHEN a.concurrent_cap IS NULL THEN CASE a.scope_kind WHEN 'user' THEN CAST(p_caps[7] AS BIGINT) WHEN 'server' THEN CAST(p_caps[8] AS BIGINT) ELSE CAST(p_caps[9] AS BIGINT) END WHEN a.concurrent_cap < 0 THEN NULL ELSE a.concurrent_cap END) END);
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n <> scopes THEN
        RAISE EXCEPTION 'ledger: a cap has no room, or a share or period is new' USING ERRCODE = 'LG001';
    END IF;
    WITH c AS (SELECT NULLIF(COALESCE((SELECT o.hourly_cap FROM accounts o WHERE o.scope_kind = 'user' AND o.scope_id = CAST(p_user AS TEXT) AND o.stripe = 0), CAST(p_caps[10] AS BIGINT), -1), -1) AS cu, NULLIF(COALESCE((SELECT o.hourly_cap FROM accounts o WHERE o.scope_kind = 'server' AND o.scope_id = CAST(p_server AS TEXT) AND o.stripe = 0), CAST(p_caps[11] AS BIGINT), -1), -1) AS cs, NULLIF(COALESCE((SELECT o.hourly_cap FROM accounts o WHERE o.scope_kind = 'global' AND o.scope_id = '*' AND o.stripe = CAST(p_stripe AS INTEGER)), CAST(p_caps[12] AS BIGINT), -1), -1) AS cg) INSERT INTO starts AS t (user_id, server_id, at_second, started) SELECT CAST(p_user AS TEXT), COALESCE(CAST(p_server AS TEXT), ''), CAST(p_second AS BIGINT), 1 FROM c WHERE (c.cu IS NULL OR (SELECT CAST(COALESCE(SUM(s.started), 0) AS BIGINT) FROM starts s WHERE s.user_id = CAST(p_user AS TEXT) AND s.at_second > CAST(CAST(floor(p_now - 3600) AS BIGINT) AS BIGINT)) < c.cu) AND (c.cs IS NULL OR p_server IS NULL OR (SELECT CAST(COALESCE(SUM(s.started), 0) AS BIGINT) FROM starts s WHERE s.server_id = CAST(p_server AS TEXT) AND s.server_id <> '' AND s.at_second > CAST(CAST(floor(p_now - 3600) AS BIGINT) AS BIGINT)) < c.cs) AND (c.cg IS NULL OR (0 = 1 AND (SELECT CAST(COALESCE(SUM(s.started), 0) AS BIGINT) FROM starts s WHERE TRUE AND s.at_second > CAST(CAST(floor(p_now - 3600) AS BIGINT) AS BIGINT)) < c.cg)) ON CONFLICT (user_id, at_second, server_id) DO UPDATE SET started = t.started + 1;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n <> 1 THEN
        RAISE EXCEPTION 'ledger: an hourly cap has no room' USING ERRCODE = 'LG001';
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION ledger_release(
    p_key TEXT, p_kind TEXT, p_amount BIGINT, p_now DOUBLE PRECISION, p_note TEXT
) RETURNS SETOF holds LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    h holds%ROWTYPE;
    n BIGINT;
BEGIN
    IF p_kind = 'settle' THEN
        UPDATE holds SET status = 'settled', settled_micros = COALESCE(CAST(p_amount AS BIGINT), amount_micros), updated_at = p_now WHERE key = p_key AND status = 'held' AND COALESCE(CAST(p_amount AS BIGINT), amount_micros) <= amount_micros RETURNING * INTO h;
    ELSIF p_kind = 'void' AND p_amount IS NULL THEN
        UPDATE holds SET status = 'voided', updated_at = p_now WHERE key = p_key AND status = 'held' RETURNING * INTO h;
    END IF;
    IF h.key IS NULL THEN
        RAISE EXCEPTION 'ledger: not a held key, or more than it holds' USING ERRCODE = 'LG001';
    END IF;
    INSERT INTO entries (at, key, kind, amount_micros, user_id, server_id, model, note) VALUES (p_now, p_key, p_kind, CASE WHEN p_kind = 'settle' THEN h.settled_micros ELSE h.amount_micros END, h.user_id, h.server_id, h.model, p_note);
    INSERT INTO accounts AS a (scope_kind, scope_id, stripe) SELECT v.kind, v.id, v.stripe FROM (SELECT 1 AS rank, 'user' AS kind, CAST(h.user_id AS TEXT) AS id, 0 AS stripe UNION ALL SELECT 2, 'server', CAST(h.server_id AS TEXT), 0 UNION ALL SELECT 3, 'global', '*', CAST(h.stripe AS INTEGER)) AS v WHERE v.id IS NOT NULL AND EXISTS (SELECT 1 FROM accounts e WHERE e.scope_kind = v.kind AND e.scope_id = v.id AND e.stripe = v.stripe) ORDER BY v.rank ON CONFLICT (scope_kind, scope_id, stripe) DO UPDATE SET running = a.running - 1, held_micros = a.held_micros - CAST(h.amount_micros AS BIGINT), day_micros = a.day_micros - CASE WHEN a.day_start = h.day_start THEN CAST(CASE WHEN p_kind = 'settle' THEN h.amount_micros - h.settled_micros ELSE h.amount_micros END AS BIGINT) ELSE 0 END, day_held = a.day_held - CASE WHEN a.day_start = h.day_start THEN CAST(h.amount_micros AS BIGINT) ELSE 0 END, month_micros = a.month_micros - CASE WHEN a.month_start = h.month_start THEN CAST(CASE WHEN p_kind = 'settle' THEN h.amount_micros - h.settled_micros ELSE h.amount_micros END AS BIGINT) ELSE 0 END, month_held = a.month_held - CASE WHEN a.month_start = h.month_start THEN CAST(h.amount_micros AS BIGINT) ELSE 0 END WHERE a.running - 1 >= 0 AND a.held_micros - CAST(h.amount_micros AS BIGINT) >= 0 AND a.day_micros - CASE WHEN a.day_start = h.day_start THEN CAST(CASE WHEN p_kind = 'settle' THEN h.amount_micros - h.settled_micros ELSE h.amount_micros END AS BIGINT) ELSE 0 END >= 0 AND a.day_held - CASE WHEN a.day_start = h.day_start THEN CAST(h.amount_micros AS BIGINT) ELSE 0 END >= 0 AND a.month_micros - CASE WHEN a.month_start = h.month_start THEN CAST(CASE WHEN p_kind = 'settle' THEN h.amount_micros - h.settled_micros ELSE h.amount_micros END AS BIGINT) ELSE 0 END >= 0 AND a.month_held - CASE WHEN a.month_start = h.month_start THEN CAST(h.amount_micros AS BIGINT) ELSE 0 END >= 0;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n <> (CASE WHEN h.server_id IS NULL THEN 2 ELSE 3 END) THEN
        RAISE EXCEPTION 'ledger: accounts missing, or holding less than the hold' USING ERRCODE = 'LG001';
    END IF;
    IF p_kind = 'void' THEN
        UPDATE starts SET started = started - 1 WHERE user_id = h.user_id AND server_id = COALESCE(CAST(h.server_id AS TEXT), '') AND at_second = CAST(ceil(h.created_at) AS BIGINT) AND started > 0;
    END IF;
    RETURN NEXT h;
END
$$;

