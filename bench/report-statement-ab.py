import re, subprocess, sys
DB = "postgres://postgres@127.0.0.1:5432/bench1m"
def sql_of(path):
    s = open(path).read()
    m = re.search(r'pub const APPLY_REPORTS_SQL: &str = "(.*?)";\n', s, re.S)
    return m.group(1).replace('\\"', '"')
OLD, NEW = sql_of("old.rs"), sql_of("new.rs")
def psql(sql):
    return subprocess.run(["psql", DB, "-v", "ON_ERROR_STOP=1", "-At"], input=sql, text=True,
                          capture_output=True, check=True).stdout
cid = int(psql("select min(campaign_id) from campaign_customers").strip())
grace = 7
rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 6
times = {"old": [], "new": []}
for r in range(rounds):
    ids = psql(f"select customer_id from campaign_customers where campaign_id = {cid} and delivery_status = 'pending' "
               f"and released_at is not null order by random() limit 2000").split()
    sets = {"old": ids[:1000], "new": ids[1000:]}
    order = ["old", "new"] if r % 2 == 0 else ["new", "old"]
    for name in order:
        sql = OLD if name == "old" else NEW
        c = sets[name]
        arr = lambda xs, t: "array[" + ",".join(xs) + f"]::{t}[]"
        args = ", ".join([
            arr([str(i) for i in range(1000)], "int4"), arr([str(cid)] * 1000, "int4"),
            arr([f"'{x}'" for x in c], "uuid"), arr(["'sent'"] * 1000, "text"),
            arr(["now() - interval '1 minute'"] * 1000, "timestamptz"),
            arr([f"'ab-{name}-{r}-{i}'" for i in range(1000)], "text"), arr(["null"] * 1000, "text"),
            "'credit_card'", str(grace)])
        out = psql(f"prepare s as {sql};\n\\timing on\nexecute s({args});\n")
        t = float(re.findall(r"Time: ([0-9.]+) ms", out)[-1])
        times[name].append(t)
        print(name, r, t, flush=True)
for k, v in times.items():
    v2 = sorted(v)
    print(k, "median", v2[len(v2)//2], "all", v)
print("ratio new/old (medians)", sorted(times["new"])[rounds//2] / sorted(times["old"])[rounds//2])
