//! `lua/lib/proxy.lua` (`stage.proxy`, stage-spec §6.8, keys §5.5) run in a bare Lua 5.4 VM:
//! edges, plain handlers, veto, re-entrancy, key conversion, tostring, pairs/len, call forms,
//! and the proxy parts of `bin/package/test_example.lua` and `cluster.lua` (§12, §15).

use mlua::{Function, Lua, Table};

const PROXY: &str = include_str!("../../lua/lib/proxy.lua");

/// A VM with `stage.proxy` installed and `print`/`warn` captured into the table `OUT`.
fn vm() -> Lua {
    let lua = Lua::new();
    let proxy: Function = lua
        .load(PROXY)
        .set_name("@lua/lib/proxy.lua")
        .eval()
        .expect("proxy.lua loads");
    let stage = lua.create_table().unwrap();
    stage.set("proxy", proxy).unwrap();
    lua.globals().set("stage", stage).unwrap();
    lua.load(
        r##"
        OUT = {}
        function print(...)
          local parts = {}
          for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
          OUT[#OUT + 1] = table.concat(parts, "\t")
        end
        WARNINGS = {}
        function warn(...)
          WARNINGS[#WARNINGS + 1] = table.concat({ ... })
        end
        -- edges as "a,b,c" (or the value itself when a handler gets the old value)
        function list(t)
          if type(t) ~= "table" then return tostring(t) end
          local parts = {}
          for i, v in ipairs(t) do parts[i] = tostring(v) end
          return "{" .. table.concat(parts, ",") .. "}"
        end
        -- like bin/preload/print_r.lua: "#\tkey: value" lines
        function dump(t)
          local lines = {}
          for k, v in pairs(t) do lines[#lines + 1] = "#\t" .. tostring(k) .. ": " .. tostring(v) end
          table.sort(lines)
          for _, l in ipairs(lines) do print(l) end
        end
        "##,
    )
    .set_name("=prelude")
    .exec()
    .unwrap();
    lua
}

/// Runs `code` and returns (and clears) what it printed, addresses replaced by `0x…`.
fn run(lua: &Lua, code: &str) -> Vec<String> {
    if let Err(e) = lua.load(code).set_name("=test").exec() {
        panic!("lua error: {e}");
    }
    let out: Table = lua.globals().get("OUT").unwrap();
    let lines: Vec<String> = out
        .sequence_values::<String>()
        .collect::<mlua::Result<_>>()
        .unwrap();
    lua.load("OUT = {}").exec().unwrap();
    lines.iter().map(|l| mask(l)).collect()
}

/// Runs `code`, expecting a Lua error; returns its message.
fn fails(lua: &Lua, code: &str) -> String {
    match lua.load(code).set_name("=test").exec() {
        Ok(()) => panic!("expected an error from {code}"),
        Err(e) => e.to_string(),
    }
}

fn mask(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(at) = rest.find("0x") {
        out.push_str(&rest[..at + 2]);
        let tail = &rest[at + 2..];
        let hex = tail
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(tail.len());
        if hex > 0 {
            out.push('…');
        }
        rest = &tail[hex..];
    }
    out.push_str(rest);
    out
}

fn lines(expected: &[&str]) -> Vec<String> {
    expected.iter().map(|s| s.to_string()).collect()
}

const EDGES: &str = r##"
local function F1(p, edges, k, v) print("F1", k, v, list(edges)) end
local function F2(p, edges, k, v) print("F2", k, v, list(edges)) end
T = { A = 12 }
P = stage.proxy(T, { A = { 10, 20, 30, F1, 40, F2 } })
"##;

#[test]
fn edges_cross_upward_only() {
    let lua = vm();
    run(&lua, EDGES);
    // §15: {A=12} → A=34 fires only F1(20,30) (the seed's F2({40}) is wrong: 34 < 40)
    assert_eq!(run(&lua, "P.A = 34"), lines(&["F1\tA\t34\t{20,30}"]));
    // 34 → 50 fires F2(40)
    assert_eq!(run(&lua, "P.A = 50"), lines(&["F2\tA\t50\t{40}"]));
    assert_eq!(run(&lua, "print(T.A, P.A)"), lines(&["50\t50"]));
    // going down fires nothing, going up again crosses from the new old value
    assert_eq!(run(&lua, "P.A = 5"), Vec::<String>::new());
    assert_eq!(run(&lua, "P.A = 25"), lines(&["F1\tA\t25\t{10,20}"]));
    // staying above every edge already crossed fires nothing
    assert_eq!(run(&lua, "P.A = 29"), Vec::<String>::new());
    assert_eq!(
        run(&lua, "P.A = 45"),
        lines(&["F1\tA\t45\t{30}", "F2\tA\t45\t{40}"])
    );
}

#[test]
fn edges_from_nil_or_zero() {
    let lua = vm();
    run(&lua, EDGES);
    // old nil → F1(10,20,30)
    assert_eq!(
        run(&lua, "T.A = nil; P.A = 34"),
        lines(&["F1\tA\t34\t{10,20,30}"])
    );
    // old 0 → the same
    assert_eq!(
        run(&lua, "T.A = 0; P.A = 34"),
        lines(&["F1\tA\t34\t{10,20,30}"])
    );
    // from nil straight past every edge: both handlers
    assert_eq!(
        run(&lua, "T.A = nil; P.A = 40"),
        lines(&["F1\tA\t40\t{10,20,30}", "F2\tA\t40\t{40}"])
    );
    // the old value has another type: number edges are skipped
    assert_eq!(run(&lua, "T.A = 'x'; P.A = 40"), Vec::<String>::new());
    assert_eq!(run(&lua, "print(T.A)"), lines(&["40"]));
}

#[test]
fn string_boolean_and_leading_handler_edges() {
    let lua = vm();
    run(
        &lua,
        r##"
        T = {}
        P = stage.proxy(T, {
          state = { "open", function (p, e, k, v) print("OPEN", list(e), v) end },
          flag = { true, function (p, e, k, v) print("FLAG", list(e), v) end },
          n = { function (p, e, k, v) print("ANY", list(e), v) end, 10,
                function (p, e, k, v) print("TEN", list(e), v) end },
        })
        "##,
    );
    assert_eq!(
        run(&lua, "P.state = 'open'"),
        lines(&["OPEN\t{open}\topen"])
    );
    // already "open": looking back skips the edge
    assert_eq!(run(&lua, "P.state = 'open'"), Vec::<String>::new());
    assert_eq!(run(&lua, "P.state = 'closed'"), Vec::<String>::new());
    assert_eq!(
        run(&lua, "P.state = 'open'"),
        lines(&["OPEN\t{open}\topen"])
    );
    assert_eq!(run(&lua, "P.flag = true"), lines(&["FLAG\t{true}\ttrue"]));
    assert_eq!(run(&lua, "P.flag = true"), Vec::<String>::new());
    assert_eq!(run(&lua, "P.flag = false"), Vec::<String>::new());
    // a handler in the first position runs on every assignment (with no edges)
    assert_eq!(run(&lua, "P.n = 5"), lines(&["ANY\t{}\t5"]));
    assert_eq!(
        run(&lua, "P.n = 12"),
        lines(&["ANY\t{}\t12", "TEN\t{10}\t12"])
    );
    assert_eq!(run(&lua, "P.n = 13"), lines(&["ANY\t{}\t13"]));
}

#[test]
fn plain_handler_receives_old_value() {
    let lua = vm();
    run(
        &lua,
        r##"
        T = { A = 1 }
        P = stage.proxy(T, { A = function (p, old, k, new)
          print("H", p, old, k, new, T.A, rawequal(p, P))
        end })
        "##,
    );
    assert_eq!(
        run(&lua, "P.A = 2"),
        lines(&["H\tproxy:[table: 0x…]\t1\tA\t2\t1\ttrue"])
    );
    assert_eq!(
        run(&lua, "P.A = nil"),
        lines(&["H\tproxy:[table: 0x…]\t2\tA\tnil\t2\ttrue"])
    );
    assert_eq!(run(&lua, "print(T.A)"), lines(&["nil"]));
    // other columns have no handler
    assert_eq!(run(&lua, "P.B = 1; print(T.B)"), lines(&["1"]));
}

#[test]
fn returning_false_vetoes() {
    let lua = vm();
    run(
        &lua,
        r##"
        T = { hp = 10, level = 1 }
        P = stage.proxy(T, {
          hp = function (p, old, k, new) return new >= 0 end,
          level = { 5, function (p, e, k, v) print("LEVEL", list(e)); return false end },
          [""] = { ["*"] = function (p, old, k, new) if k == "locked" then return false end end },
        })
        "##,
    );
    assert_eq!(
        run(&lua, "P.hp = -5; print(T.hp); P.hp = 3; print(T.hp)"),
        lines(&["10", "3"])
    );
    // an edge handler vetoes too; below the edge nothing runs and the value is stored
    assert_eq!(
        run(
            &lua,
            "P.level = 6; print(T.level); P.level = 4; print(T.level)"
        ),
        lines(&["LEVEL\t{5}", "1", "4"])
    );
    assert_eq!(
        run(&lua, "P.locked = 1; P.open = 1; print(T.locked, T.open)"),
        lines(&["nil\t1"])
    );
    // true or nothing lets the value through
    assert_eq!(
        run(
            &lua,
            "local Q = stage.proxy(T, { x = function () return true end }); Q.x = 7; print(T.x)"
        ),
        lines(&["7"])
    );
}

#[test]
fn cluster_lua_cascade() {
    let lua = vm();
    let out = run(
        &lua,
        r##"
        local T = { value = 10, level = 1 }
        local proxy = stage.proxy(T, {
          ["value"] = { 10, 20, 30, function (proxy, edges, k, v)
            print("CHANGE VALUE", k, v)
            for i, p in ipairs(edges) do
              print("", i, p)
              proxy.level = math.floor(p / 10)
            end
          end },
          ["level"] = { 1, 2, 3, function (proxy, edges, k, v)
            print("CHANGE LEVEL", k, v)
            for i, p in ipairs(edges) do
              print("", i, p)
            end
          end }
        })
        proxy.value = 30
        print("FINAL", T.value, T.level)
        "##,
    );
    assert_eq!(
        out,
        lines(&[
            "CHANGE VALUE\tvalue\t30",
            "\t1\t20",
            "CHANGE LEVEL\tlevel\t2",
            "\t1\t2",
            "\t2\t30",
            "CHANGE LEVEL\tlevel\t3",
            "\t1\t3",
            "FINAL\t30\t3",
        ])
    );
}

#[test]
fn same_entry_reentrancy_skips_handlers() {
    let lua = vm();
    let out = run(
        &lua,
        r##"
        local T = {}
        local calls = 0
        local P = stage.proxy(T, {
          value = function (p, old, k, new)
            calls = calls + 1
            p.value = new * 2          -- same column: stored without handlers
            print("INSIDE", T.value)
            p.other = new              -- another column: its handler fires
          end,
          other = function (p, old, k, new) print("OTHER", new) end,
          [""] = { ["*"] = function (p, old, k, new)
            print("STAR", k)
            p.b = 1                    -- selects the same "*" entry: no handler
          end },
        })
        P.value = 5
        print("VALUE", T.value, calls)  -- the outer assignment is stored last
        P.a = 1
        print("STAR DONE", T.a, T.b)
        P.value = 6
        print("AGAIN", T.value, calls)
        "##,
    );
    assert_eq!(
        out,
        lines(&[
            "INSIDE\t10",
            "OTHER\t5",
            "VALUE\t5\t1",
            "STAR\ta",
            "STAR DONE\t1\t1",
            "INSIDE\t12",
            "OTHER\t6",
            "AGAIN\t6\t2",
        ])
    );
}

#[test]
fn handler_lookup_order() {
    let lua = vm();
    let out = run(
        &lua,
        r##"
        local T = {}
        local P = stage.proxy(T, {
          name = function (p, o, k, v) print("NAME", k, v) end,
          ["10"] = function (p, o, k, v) print("COLUMN 10", k, v) end,
          [""] = {
            ["*"] = function (p, o, k, v) print("STAR", k, v) end,
            ["#"] = function (p, o, k, v) print("HASH", k, v) end,
            title = function (p, o, k, v) print("TITLE", k, v) end,
          },
        })
        P.name = 1
        P.title = 2
        P.other = 3
        P[10] = 4          -- number keys use "#", never a column
        P["10"] = 5
        local Q = stage.proxy({}, function (p, o, k, v) print("ANY", p, k, v) end)
        Q.x = 1
        Q[1] = 2
        Q[true] = 3        -- converted with tostring
        local R = stage.proxy({}, { x = 1, [""] = function (p, o, k, v) print("FALLBACK", k) end })
        R.x = 1            -- a column entry without a handler still claims the column
        R.y = 2
        "##,
    );
    assert_eq!(
        out,
        lines(&[
            "NAME\tname\t1",
            "TITLE\ttitle\t2",
            "STAR\tother\t3",
            "HASH\t10\t4",
            "COLUMN 10\t10\t5",
            "ANY\tproxy:[table: 0x…]\tx\t1",
            "ANY\tproxy:[table: 0x…]\t1\t2",
            "ANY\tproxy:[table: 0x…]\ttrue\t3",
            "FALLBACK\ty",
        ])
    );
}

#[test]
fn tostring_format() {
    let lua = vm();
    let out = run(
        &lua,
        r##"
        local T = {}
        local P = stage.proxy(T)
        print(P)
        print(tostring(P) == "proxy:[" .. tostring(T) .. "]")
        print(stage.proxy(T, "actor"))
        print(stage.proxy(T, { "index:{10,10}" }))
        print(stage.proxy(T, { [""] = { "thread:x:y" } }))
        print(stage.proxy(T, { [""] = "noid" }))
        local U = setmetatable({}, { __tostring = function () return "custom" end })
        print(stage.proxy(U, "actor"))
        print(type(P), getmetatable(P).__name)
        "##,
    );
    assert_eq!(
        out,
        lines(&[
            "proxy:[table: 0x…]",
            "true",
            "actor:[table: 0x…]",
            "index:[table: 0x…]",
            "thread:[table: 0x…]",
            "noid:[table: 0x…]",
            "actor:[custom]",
            "table\tproxy",
        ])
    );
}

#[test]
fn pairs_len_ipairs_and_reads() {
    let lua = vm();
    let out = run(
        &lua,
        r##"
        local T = { 10, 20, 30, x = 1, sub = { a = 1, 5, 6 } }
        local P = stage.proxy(T)
        print(#P, P[2], P.x, P.missing)
        local n = 0
        for k, v in pairs(P) do n = n + 1 end
        print("PAIRS", n, next(P))
        local seq = {}
        for i, v in ipairs(P) do seq[#seq + 1] = i .. "=" .. v end
        print("IPAIRS", table.concat(seq, " "))
        -- tables come back wrapped (same contents, same tostring, length and pairs)
        local sub = P.sub
        print(rawequal(sub, T.sub), tostring(sub) == tostring(T.sub), #sub, sub.a, sub[2])
        print(getmetatable(sub).__name, rawequal(P.sub, P.sub))
        sub.b = 2
        print(T.sub.b)
        local keys = {}
        for k in pairs(sub) do keys[#keys + 1] = tostring(k) end
        table.sort(keys)
        print(table.concat(keys, ","))
        print(rawequal(P[""], T))
        -- proxies (and wrappers) stored in t1 are returned as they are
        local Q = stage.proxy({})
        T.inner = Q
        T.wrapped = sub
        print(rawequal(P.inner, Q), rawequal(P.wrapped, sub))
        "##,
    );
    assert_eq!(
        out,
        lines(&[
            "3\t20\t1\tnil",
            "PAIRS\t5\tnil",
            "IPAIRS\t1=10 2=20 3=30",
            "false\ttrue\t2\t1\t6",
            "proxy.table\ttrue",
            "2",
            "1,2,a,b",
            "true",
            "true\ttrue",
        ])
    );
}

#[test]
fn call_forms() {
    let lua = vm();
    let out = run(
        &lua,
        r##"
        local T = {}
        local P = stage.proxy(T, { x = function (p, o, k, v) print("X", v) end })
        local r = P(function (q)
          print("INSIDE", rawequal(q, P))
          q.x = 1
        end)
        print(rawequal(r, T), T.x, select("#", P(function () return 1, 2 end)))
        print(rawequal(P(), T))
        "##,
    );
    assert_eq!(out, lines(&["INSIDE\ttrue", "X\t1", "true\t1\t1", "true"]));
    assert!(fails(&lua, "stage.proxy({})(1)").contains("bad argument #2"));
    assert!(fails(&lua, "stage.proxy({})(nil)").contains("bad argument #2"));
    assert!(fails(&lua, "stage.proxy(1)").contains("Unsupported data types"));
    // errors inside the called function propagate
    assert!(fails(&lua, "stage.proxy({})(function () error('boom') end)").contains("boom"));
}

#[test]
fn key_conversion() {
    let lua = vm();
    // cluster.lua: the proxy's converter turns {10, 2} into 210
    let out = run(
        &lua,
        r##"
        local index = stage.proxy({}, {
          function (i)
            return (i[2] * 100) + i[1]
          end
        })
        index[{10, 2}] = 100
        dump(index)
        print(index[{10, 2}], index[210])
        "##,
    );
    assert_eq!(out, lines(&["#\t210: 100", "100\t100"]));

    // nil from the converter: not stored, not found; arguments are (k, index id, t1)
    let out = run(
        &lua,
        r##"
        local T = {}
        local P = stage.proxy(T, { "ids:1", function (k, i, t)
          print("CONV", i, rawequal(t, T))
          return k.id
        end })
        P[{ id = "a" }] = 1
        P[{}] = 2
        print(T.a, next(T, "a"), P[{}], P[{ id = "a" }])
        "##,
    );
    assert_eq!(
        out,
        lines(&[
            "CONV\tids:1\ttrue",
            "CONV\tids:1\ttrue",
            "CONV\tids:1\ttrue",
            "CONV\tids:1\ttrue",
            "1\tnil\tnil\t1",
        ])
    );

    // without a converter and without stage.index: tostring(k)
    let out = run(
        &lua,
        r##"
        local T = {}
        local P = stage.proxy(T)
        local K = {}
        P[K] = "v"
        print(T[tostring(K)], P[K], P[true], rawget(T, K))
        P[true] = 1
        print(T["true"])
        "##,
    );
    assert_eq!(out, lines(&["v\tv\tnil\tnil", "1"]));

    // stage.index hook (function, or table keyed by index id); nil = ignore; non-string → tostring
    let out = run(
        &lua,
        r##"
        stage.index = function (k, i, t)
          print("INDEX", i, type(t))
          if k.skip then return nil end
          if k.tab then return setmetatable({}, { __tostring = function () return "T!" end }) end
          return k.n
        end
        local T = {}
        local P = stage.proxy(T)
        P[{ n = 7 }] = "seven"
        P[{ skip = true }] = "no"
        P[{ tab = true }] = "tab"
        print(T[7], T["T!"], P[{ n = 7 }])
        -- nested tables read through the proxy convert their keys with the hook too
        T.sub = {}
        P.sub[{ n = 3 }] = "three"
        print(T.sub[3])
        -- the proxy's converter runs first; a table result then goes through stage.index
        local Q = stage.proxy({}, { "q", function (k) return { n = k[1] } end })
        Q[{ 9 }] = "nine"
        print(Q(), Q()[9])
        stage.index = { only = function (k, i) return "ONLY" end }
        local R = stage.proxy({}, "only")
        R[{}] = 1
        local S = stage.proxy({}, "other")
        local K = {}
        S[K] = 2
        print(R()["ONLY"], S()[tostring(K)])
        stage.index = nil
        "##,
    );
    assert_eq!(
        out,
        lines(&[
            "INDEX\tproxy\ttable",
            "INDEX\tproxy\ttable",
            "INDEX\tproxy\ttable",
            "INDEX\tproxy\ttable",
            "seven\ttab\tseven",
            "INDEX\tproxy\ttable",
            "three",
            "INDEX\tq\ttable",
            "table: 0x…\tnine",
            "1\t2",
        ])
    );

    // errors from a converter or the hook are raised at the assignment
    assert!(fails(
        &lua,
        "stage.proxy({}, { function () error('conv failed') end })[{}] = 1"
    )
    .contains("conv failed"));
}

#[test]
fn test_example_lua_sequence() {
    let lua = vm();
    let out = run(
        &lua,
        r##"
        local proxy = stage.proxy({}, {
          [""] = {
            "index:{10,10}",
            function (k, i)
              print("INDEX", k, i)
              return k[1]
            end,

            ["*"] = function (t, edges, k, v)
              print("NAME CHANGE", t, edges, k, v)
            end,
            ["#"] = function (t, edges, k, v)
              print("INDEX CHANGE", t, edges, k, v)
            end
          },
          test = { 10, 20, function (t, edges, k, v)
            print("TEST", edges, k, v)
            for k, v in pairs(edges) do
              print("", k, v)
            end
          end}
        })

        proxy.test = 0
        proxy.test = 40
        for i = 1, 30, 1 do
          proxy.test = proxy.test + 1
        end

        proxy.name = "HELLO"
        proxy[10] = "STAGE"
        proxy[{"HELLO", 20}] = "HAHA"

        print("PROXY", proxy)
        local rows = {}
        for k, v in pairs(proxy) do
          rows[#rows + 1] = tostring(k) .. " " .. tostring(v)
        end
        table.sort(rows)
        for _, r in ipairs(rows) do print("", r) end
        "##,
    );
    assert_eq!(
        out,
        lines(&[
            "TEST\ttable: 0x…\ttest\t40",
            "\t1\t10",
            "\t2\t20",
            "NAME CHANGE\tindex:[table: 0x…]\tnil\tname\tHELLO",
            "INDEX CHANGE\tindex:[table: 0x…]\tnil\t10\tSTAGE",
            "INDEX\ttable: 0x…\tindex:{10,10}",
            "NAME CHANGE\tindex:[table: 0x…]\tnil\tHELLO\tHAHA",
            "PROXY\tindex:[table: 0x…]",
            "\t10 STAGE",
            "\tHELLO HAHA",
            "\tname HELLO",
            "\ttest 70",
        ])
    );
}

#[test]
fn handler_errors_are_reported_not_raised() {
    let lua = vm();
    let out = run(
        &lua,
        r##"
        local T = {}
        local P = stage.proxy(T, {
          a = function () error("bad handler") end,
          b = { 1, function () error("bad edge") end },
        })
        P.a = 1
        P.b = 2
        print(T.a, T.b, #WARNINGS)
        print(WARNINGS[1]:find("bad handler", 1, true) ~= nil, WARNINGS[2]:find("bad edge", 1, true) ~= nil)
        P.a = 3                      -- the entry is usable again afterwards
        print(T.a, #WARNINGS)
        "##,
    );
    assert_eq!(out, lines(&["1\t2\t2", "true\ttrue", "3\t3"]));
}

#[test]
fn userdata_and_metatable_targets() {
    let lua = vm();
    // t1 with its own metamethods: reads, writes, # and pairs go through them
    let out = run(
        &lua,
        r##"
        local store = { a = 1 }
        local T = setmetatable({}, {
          __index = store,
          __newindex = function (_, k, v) print("SET", k, v); store[k] = v end,
          __len = function () return 42 end,
          __pairs = function () return next, store, nil end,
        })
        local P = stage.proxy(T, { a = function (p, old, k, new) print("OLD", old) end })
        P.a = 2
        print(P.a, #P)
        for k, v in pairs(P) do print("PAIR", k, v) end
        "##,
    );
    assert_eq!(out, lines(&["OLD\t1", "SET\ta\t2", "2\t42", "PAIR\ta\t2"]));
}
