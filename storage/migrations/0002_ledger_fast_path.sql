-- dialects: postgres
-- The common reservation in ONE round trip (PostgreSQL only; SQLite statements cost no round
-- trip). It is the happy path of storage.ledger.Ledger.reserve_in, step for step: the hold,
-- the caps (overrides over the defaults passed in), per scope in the fixed order user,
-- server, global: the scope lock when the scope has a job-count cap, the bounded counts (a
-- new statement, so a new snapshot taken after the lock), the day and month counters in one
-- conditional UPDATE; then the history entry. Whenever anything is not plain - a repeated
-- key, a missing counter or lock row, a cap without room - it raises
-- SQLSTATE LG001: the statement's transaction is rolled back whole and the caller takes the
-- general path (which records refusals and handles repeats). It never refuses by itself.
CREATE FUNCTION ledger_reserve_fast(
    p_key TEXT, p_amount BIGINT, p_user TEXT, p_server TEXT, p_model TEXT, p_note TEXT,
    p_day BIGINT, p_month BIGINT, p_stripe INTEGER, p_now DOUBLE PRECISION,
    p_since DOUBLE PRECISION, p_defaults BIGINT[]
) RETURNS VOID LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    kinds TEXT[] := ARRAY['user', 'server', 'global'];
    caps TEXT[] := ARRAY['daily', 'monthly', 'concurrent_jobs', 'jobs_per_hour'];
    lim BIGINT[] := p_defaults;  -- (scope - 1) * 4 + cap: NULL = no cap
    o RECORD;
    i INTEGER;
    k TEXT;
    sid TEXT;
    st INTEGER;
    cap_d BIGINT;
    cap_m BIGINT;
    cap_c BIGINT;
    cap_h BIGINT;
    n BIGINT;
    total BIGINT;
BEGIN
    INSERT INTO holds (key, status, amount_micros, settled_micros, user_id, server_id, model,
                       note, day_start, month_start, stripe, created_at, updated_at)
    VALUES (p_key, 'held', p_amount, 0, p_user, p_server, p_model, p_note, p_day, p_month,
            p_stripe, p_now, p_now)
    ON CONFLICT (key) DO NOTHING;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'ledger fast path: key seen before' USING ERRCODE = 'LG001';
    END IF;
    FOR o IN SELECT scope_kind, cap, value FROM limit_overrides
             WHERE (scope_kind = 'user' AND scope_id = p_user)
                OR (scope_kind = 'server' AND scope_id = p_server)
                OR (scope_kind = 'global' AND scope_id = '*')
    LOOP
        lim[(array_position(kinds, o.scope_kind) - 1) * 4 + array_position(caps, o.cap)] := o.value;
    END LOOP;
    FOR i IN 1..3 LOOP
        k := kinds[i];
        CONTINUE WHEN k = 'server' AND p_server IS NULL;
        sid := CASE k WHEN 'user' THEN p_user WHEN 'server' THEN p_server ELSE '*' END;
        st := CASE WHEN k = 'global' THEN p_stripe ELSE 0 END;
        cap_d := lim[(i - 1) * 4 + 1];
        cap_m := lim[(i - 1) * 4 + 2];
        cap_c := lim[(i - 1) * 4 + 3];
        cap_h := lim[(i - 1) * 4 + 4];
        IF cap_c IS NOT NULL OR cap_h IS NOT NULL THEN
            UPDATE scope_locks SET version = version + 1 WHERE scope_kind = k AND scope_id = sid;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'ledger fast path: no lock row' USING ERRCODE = 'LG001';
            END IF;
        END IF;
        IF cap_c IS NOT NULL THEN
            IF k = 'user' THEN
                SELECT COUNT(*) INTO n FROM (SELECT 1 FROM holds WHERE user_id = sid
                    AND status = 'held' LIMIT LEAST(cap_c, 9223372036854775806) + 1) h;
            ELSIF k = 'server' THEN
                SELECT COUNT(*) INTO n FROM (SELECT 1 FROM holds WHERE server_id = sid
                    AND status = 'held' LIMIT LEAST(cap_c, 9223372036854775806) + 1) h;
            ELSE
                SELECT COUNT(*) INTO n FROM (SELECT 1 FROM holds
                    WHERE status = 'held' LIMIT LEAST(cap_c, 9223372036854775806) + 1) h;
            END IF;
            IF n > cap_c THEN
                RAISE EXCEPTION 'ledger fast path: concurrent cap' USING ERRCODE = 'LG001';
            END IF;
        END IF;
        IF cap_h IS NOT NULL THEN
            IF k = 'user' THEN
                SELECT COUNT(*) INTO n FROM (SELECT 1 FROM holds WHERE user_id = sid
                    AND created_at > p_since AND status IN ('held', 'settled')
                    LIMIT LEAST(cap_h, 9223372036854775806) + 1) r;
            ELSIF k = 'server' THEN
                SELECT COUNT(*) INTO n FROM (SELECT 1 FROM holds WHERE server_id = sid
                    AND created_at > p_since AND status IN ('held', 'settled')
                    LIMIT LEAST(cap_h, 9223372036854775806) + 1) r;
            ELSE
                SELECT COUNT(*) INTO n FROM (SELECT 1 FROM holds
                    WHERE created_at > p_since AND status IN ('held', 'settled')
                    LIMIT LEAST(cap_h, 9223372036854775806) + 1) r;
            END IF;
            IF n > cap_h THEN
                RAISE EXCEPTION 'ledger fast path: hourly cap' USING ERRCODE = 'LG001';
            END IF;
        END IF;
        IF k = 'global' THEN
            -- a global money cap: lock every stripe of the period in stripe order, check the
            -- SUM; the hold's own stripe is then raised without a further check
            IF cap_d IS NOT NULL THEN
                SELECT COUNT(*), COALESCE(SUM(used_micros), 0) INTO n, total
                FROM (SELECT used_micros FROM budgets WHERE scope_kind = 'global'
                      AND scope_id = '*' AND period_kind = 'day' AND period_start = p_day
                      ORDER BY stripe FOR UPDATE) s;
                IF n <> 16 OR total + p_amount > cap_d THEN
                    RAISE EXCEPTION 'ledger fast path: global day' USING ERRCODE = 'LG001';
                END IF;
            END IF;
            IF cap_m IS NOT NULL THEN
                SELECT COUNT(*), COALESCE(SUM(used_micros), 0) INTO n, total
                FROM (SELECT used_micros FROM budgets WHERE scope_kind = 'global'
                      AND scope_id = '*' AND period_kind = 'month' AND period_start = p_month
                      ORDER BY stripe FOR UPDATE) s;
                IF n <> 16 OR total + p_amount > cap_m THEN
                    RAISE EXCEPTION 'ledger fast path: global month' USING ERRCODE = 'LG001';
                END IF;
            END IF;
            cap_d := NULL;
            cap_m := NULL;
        END IF;
        UPDATE budgets SET used_micros = used_micros + p_amount
        WHERE scope_kind = k AND scope_id = sid AND stripe = st
          AND period_kind IN ('day', 'month') AND period_start IN (p_day, p_month)
          AND ((period_kind = 'day' AND period_start = p_day
                AND (cap_d IS NULL OR used_micros + p_amount <= cap_d))
            OR (period_kind = 'month' AND period_start = p_month
                AND (cap_m IS NULL OR used_micros + p_amount <= cap_m)));
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n <> 2 THEN
            RAISE EXCEPTION 'ledger fast path: counters' USING ERRCODE = 'LG001';
        END IF;
    END LOOP;
    INSERT INTO entries (at, key, kind, amount_micros, user_id, server_id, model, note)
    VALUES (p_now, p_key, 'reserve', p_amount, p_user, p_server, p_model, p_note);
END
$$;

-- Settle (p_kind 'settle', p_amount NULL = the whole hold) or void (p_kind 'void') a held key
-- in ONE round trip, releasing what is no longer held from the counters of the periods the
-- hold was reserved in, scope by scope in the fixed lock order (user, server, global - the
-- same order as a reservation, so no lock cycle). Anything not plain (the key is not held,
-- the amount is more than the hold) raises LG001: nothing written, take the general path,
-- which knows the repeat and error answers.
CREATE FUNCTION ledger_release_fast(
    p_key TEXT, p_kind TEXT, p_amount BIGINT, p_now DOUBLE PRECISION, p_note TEXT
) RETURNS SETOF holds LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    h holds%ROWTYPE;
    released BIGINT;
    i INTEGER;
    k TEXT;
    sid TEXT;
    st INTEGER;
    n BIGINT;
BEGIN
    IF p_kind = 'settle' THEN
        UPDATE holds SET status = 'settled', settled_micros = COALESCE(p_amount, amount_micros),
                         updated_at = p_now
        WHERE key = p_key AND status = 'held' AND COALESCE(p_amount, amount_micros) <= amount_micros
        RETURNING * INTO h;
    ELSIF p_kind = 'void' AND p_amount IS NULL THEN
        UPDATE holds SET status = 'voided', updated_at = p_now
        WHERE key = p_key AND status = 'held'
        RETURNING * INTO h;
    END IF;
    IF h.key IS NULL THEN
        RAISE EXCEPTION 'ledger fast path: not a plain release' USING ERRCODE = 'LG001';
    END IF;
    released := CASE WHEN p_kind = 'settle' THEN h.amount_micros - h.settled_micros
                     ELSE h.amount_micros END;
    IF released > 0 THEN
        FOR i IN 1..3 LOOP
            CONTINUE WHEN i = 2 AND h.server_id IS NULL;
            k := (ARRAY['user', 'server', 'global'])[i];
            sid := CASE i WHEN 1 THEN h.user_id WHEN 2 THEN h.server_id ELSE '*' END;
            st := CASE WHEN i = 3 THEN h.stripe ELSE 0 END;
            UPDATE budgets SET used_micros = used_micros - released
            WHERE scope_kind = k AND scope_id = sid AND stripe = st
              AND period_kind IN ('day', 'month') AND period_start IN (h.day_start, h.month_start)
              AND ((period_kind = 'day' AND period_start = h.day_start)
                OR (period_kind = 'month' AND period_start = h.month_start));
            GET DIAGNOSTICS n = ROW_COUNT;
            IF n <> 2 THEN
                RAISE EXCEPTION 'ledger fast path: counters' USING ERRCODE = 'LG001';
            END IF;
        END LOOP;
    END IF;
    INSERT INTO entries (at, key, kind, amount_micros, user_id, server_id, model, note)
    VALUES (p_now, p_key, p_kind, CASE WHEN p_kind = 'settle' THEN h.settled_micros
                                       ELSE h.amount_micros END,
            h.user_id, h.server_id, h.model, p_note);
    RETURN NEXT h;
END
$$;
