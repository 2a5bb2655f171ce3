#!/usr/bin/python3
"""Deployment files (deploy/) checked against the binary they deploy.

- Every YAML file parses; every example configuration file passes the parser of the component that
  reads it (`strata <command> --check-config` with that file); the example rules also pass
  `promtool check rules`, and the Prometheus and Alertmanager configurations of the Kubernetes
  manifests pass `promtool check config` and `amtool check-config`.
- systemd units: ExecStart is expanded as systemd would (EnvironmentFile from deploy/systemd/*.env,
  LoadCredential's %d, /etc/strata/<file> read from deploy/examples/<file>) and run with
  --check-config, so a renamed flag or a broken example fails here; `systemd-analyze verify` accepts
  each unit with no warning (its Documentation= man page resolved against the generated pages).
- Kubernetes: every container running the strata image has its args run with --check-config, with
  the ConfigMaps and Secrets it mounts written where it mounts them and $(VAR) references
  substituted; probes are /-/healthy and /-/ready on a named port the container declares; the
  container declares the ports of its listen flags; requests are set; every Service selects a
  workload and names ports its pods declare; kustomization.yaml lists every manifest.
- Every server command honours --check-config (it exits instead of serving; listen addresses and
  configuration errors are reported) and has a systemd unit and a Kubernetes workload (a missing one
  fails, naming it).
- The Dockerfile's runtime packages provide every library the binary links.
Prints "PASS deploy_check:<name>" / "FAIL deploy_check:<name>: why".
"""
import glob, json, os, re, shlex, shutil, subprocess, sys, tempfile

import yaml
from lib_harness import Harness

ROOT = os.environ.get("STRATA_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
STRATA = os.environ.get("STRATA_BIN", os.path.join(ROOT, "build", "strata"))
DEPLOY = os.path.join(ROOT, "deploy")
EXAMPLES = os.path.join(DEPLOY, "examples")
harness = Harness("deploy_check")
check = harness.check
TMP = tempfile.mkdtemp(prefix="strata-deploy-check.")
FS_OBJSTORE = f"type: FILESYSTEM\nconfig: {{directory: {TMP}/bucket}}"


def run(argv, timeout=20):
    return subprocess.run([STRATA] + argv, capture_output=True, text=True, timeout=timeout, cwd=TMP)


def check_config(argv):
    """strata <argv> --check-config must say the configuration is OK."""
    r = run(argv + ["--check-config"])
    if r.returncode != 0 or "configuration OK" not in r.stdout:
        raise AssertionError(f"exit {r.returncode}: {(r.stderr or r.stdout).strip()[-400:]} "
                             f"(from: strata {' '.join(argv)} --check-config)")


def command_tree(path=()):
    """{command words: help text} of every command under path (groups descended, not listed)."""
    h = run(list(path) + ["--help"]).stdout
    if "\nCommands:\n" not in h:
        return {path: h}
    out, kids = {}, []
    for line in h.split("\nCommands:\n", 1)[1].splitlines():
        if not line.startswith("  ") or line.startswith("   "):
            continue
        words = line.strip().split()
        if path and words[:len(path)] == list(path):
            words = words[len(path):]
        if words[0] not in kids:
            kids.append(words[0])
    for k in kids:
        out.update(command_tree(path + (k,)))
    return out


COMMANDS = command_tree()
SERVERS = sorted(" ".join(p) for p, h in COMMANDS.items() if "]check-config\n" in h)


# ---------------------------------------------------------------- YAML and examples
def t_yaml_parses():
    files = sorted(glob.glob(f"{DEPLOY}/**/*.yaml", recursive=True) + glob.glob(f"{DEPLOY}/**/*.yml", recursive=True))
    assert len(files) >= 8, files
    for f in files:
        with open(f) as fh:
            docs = [d for d in yaml.safe_load_all(fh) if d is not None]
        assert docs, f"{f}: no document"


# How each example file is read by the component that uses it.
EXAMPLE_CHECKS = {
    "objstore": lambda f: check_config(["store", f"--objstore.config-file={f}"]),
    "index-cache": lambda f: check_config(["store", f"--objstore.config={FS_OBJSTORE}", f"--index-cache.config-file={f}"]),
    "store-selector": lambda f: check_config(["store", f"--objstore.config={FS_OBJSTORE}",
                                              f"--selector.relabel-config-file={f}"]),
    "endpoints": lambda f: check_config(["query", f"--endpoint.sd-files={f}"]),
    "response-cache": lambda f: check_config(["query-frontend", f"--query-range.response-cache-config-file={f}"]),
}


def check_rules(f):
    check_config(["rule", "--query=127.0.0.1:9090", "--alertmanagers.url=http://127.0.0.1:9093", f"--rule-file={f}"])
    peer(["promtool", "check", "rules", f])


def peer(argv):
    """A Prometheus tool (installed by scripts/deps) must accept the file."""
    assert shutil.which(argv[0]), f"{argv[0]} not found (scripts/deps installs it)"
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"{' '.join(argv)}: exit {r.returncode}: {(r.stderr or r.stdout).strip()[-400:]}"


EXAMPLE_CHECKS["rules"] = check_rules
EXAMPLE_CHECKS["hashrings"] = lambda f: check_config(
    ["receive", f"--receive.hashrings-file={f}", "--receive.local-endpoint=receive-a.example.com:10910"])


def t_examples():
    files = sorted(glob.glob(f"{EXAMPLES}/**/*.yml", recursive=True) + glob.glob(f"{EXAMPLES}/**/*.json", recursive=True))
    assert files, "no examples"
    for f in files:
        rel = os.path.relpath(f, EXAMPLES)
        kind = next((k for k in EXAMPLE_CHECKS if rel.startswith(k)), None)
        assert kind, f"{f}: no check knows which component reads it (add it to EXAMPLE_CHECKS)"
        EXAMPLE_CHECKS[kind](f)


# ---------------------------------------------------------------- systemd
def parse_unit(path):
    """{section: [(key, value)]}, continuation lines joined."""
    out, sect, prev = {}, None, ""
    with open(path) as fh:
        for raw in fh:
            line = prev + raw.rstrip("\n")
            prev = ""
            if line.endswith("\\"):
                prev = line[:-1] + " "
                continue
            s = line.strip()
            if not s or s[0] in "#;":
                continue
            if s.startswith("["):
                sect = s.strip("[]")
                out.setdefault(sect, [])
            else:
                k, _, v = s.partition("=")
                out[sect].append((k.strip(), v.strip()))
    return out


def env_file(path):
    env = {}
    with open(path) as fh:
        for line in fh:
            if line.strip() and not line.lstrip().startswith("#"):
                k, _, v = shlex.split(line)[0].partition("=")
                env[k] = v
    return env


def etc_strata(path):
    """/etc/strata/<path> as deployed: the example at the same path under deploy/examples (a glob such
    as rules/*.yml must match files there), else of the same name in deploy/examples or deploy/systemd."""
    rel = path[len("/etc/strata/"):] if path.startswith("/etc/strata/") else os.path.basename(path)
    for d in (EXAMPLES, os.path.join(DEPLOY, "systemd")):
        for f in (os.path.join(d, rel), os.path.join(d, os.path.basename(path))):
            if glob.glob(f):
                return f
    raise AssertionError(f"{path} has no example in deploy/examples or deploy/systemd")


def unit_argv(unit_path):
    u = parse_unit(unit_path)
    svc = dict(u["Service"])
    env = env_file(etc_strata(svc["EnvironmentFile"].lstrip("-")))
    creds = os.path.join(TMP, "creds-" + os.path.basename(unit_path))
    os.makedirs(creds, exist_ok=True)
    for k, v in u["Service"]:
        if k == "LoadCredential":
            name, _, src = v.partition(":")
            shutil.copy(etc_strata(src), os.path.join(creds, name))
    argv = []
    for tok in shlex.split(svc["ExecStart"]):
        m = re.fullmatch(r"\$(\w+)", tok)
        if m:  # $VAR: the value split at whitespace, as systemd does
            assert m.group(1) in env, f"{unit_path}: ${m.group(1)} not set by its EnvironmentFile"
            argv += env[m.group(1)].split()
            continue
        tok = re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], tok).replace("%d", creds)
        argv.append(tok)
    assert argv[0].endswith("/strata"), f"{unit_path}: ExecStart runs {argv[0]}"
    argv = [re.sub(r"^(--[\w.-]+=)(/etc/strata/\S+)$", lambda m: m.group(1) + etc_strata(m.group(2)), a)
            for a in argv[1:]]
    return u, argv


def t_unit(unit_path):
    def t():
        u, argv = unit_argv(unit_path)
        name = os.path.basename(unit_path)
        words = [a for a in argv[:3] if not a.startswith("-")]
        assert name == f"strata-{'-'.join(words)}.service", f"{name} runs `strata {' '.join(words)}`"
        svc = dict(u["Service"])
        for k in ("NoNewPrivileges", "ProtectSystem"):
            assert svc.get(k), f"{name}: no {k}="
        assert svc.get("DynamicUser") == "yes" or svc.get("User"), f"{name}: neither DynamicUser= nor User="
        check_config(argv)
        assert shutil.which("systemd-analyze"), "systemd-analyze not found (scripts/deps installs systemd)"
        d = os.path.join(TMP, "units")
        os.makedirs(d, exist_ok=True)
        with open(unit_path) as fh:
            text = fh.read().replace("/usr/local/bin/strata ", STRATA + " ")
        with open(os.path.join(d, name), "w") as fh:
            fh.write(text)
        docs = os.path.join(os.path.dirname(STRATA), "doc")
        r = subprocess.run(["systemd-analyze", "verify", os.path.join(d, name)], capture_output=True, text=True,
                           timeout=60, env=dict(os.environ, MANPATH=docs))
        out = (r.stdout + r.stderr).strip()
        assert r.returncode == 0 and not out, f"systemd-analyze verify {name}: {out[-400:]}"
    return t


# ---------------------------------------------------------------- Kubernetes
def k8s_docs():
    docs = []
    for f in sorted(glob.glob(f"{DEPLOY}/kubernetes/*.yaml")):
        if os.path.basename(f) == "kustomization.yaml":
            continue
        with open(f) as fh:
            docs += [(os.path.basename(f), d) for d in yaml.safe_load_all(fh) if d]
    return docs


DOCS = k8s_docs()
WORKLOADS = [(f, d) for f, d in DOCS if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet")]


def by_name(kind, name):
    for _, d in DOCS:
        if d["kind"] == kind and d["metadata"]["name"] == name:
            return d
    raise AssertionError(f"no {kind} {name} in deploy/kubernetes")


def listen_port(args, flag):
    for a in args:
        if a.startswith(f"--{flag}="):
            return int(a.rsplit(":", 1)[1])
    return None


def t_k8s_container(f, w, c):
    def t():
        spec = w["spec"]["template"]["spec"]
        vols = {v["name"]: v for v in spec.get("volumes", [])}
        root = os.path.join(TMP, "k8s", w["metadata"]["name"], c["name"])
        mounts = {}
        for m in c.get("volumeMounts", []):
            v = vols.get(m["name"])
            if v is None:  # a volumeClaimTemplate
                assert any(t["metadata"]["name"] == m["name"] for t in w["spec"].get("volumeClaimTemplates", [])), \
                    f"volume {m['name']} is not defined"
                continue
            src = None
            if "configMap" in v:
                src = by_name("ConfigMap", v["configMap"]["name"]).get("data", {})
            elif "secret" in v:
                s = by_name("Secret", v["secret"]["secretName"])
                src = dict(s.get("stringData", {}))
            if src is None:
                continue
            d = root + m["mountPath"]
            os.makedirs(d, exist_ok=True)
            for k, val in src.items():
                with open(os.path.join(d, k), "w") as fh:
                    fh.write(val)
            mounts[m["mountPath"]] = d
        env = {e["name"]: f"test-{e['name'].lower()}" for e in c.get("env", [])}
        args = []
        for a in c["args"]:
            a = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], a)
            for mp, d in mounts.items():
                a = re.sub(rf"(^|=){re.escape(mp)}/", lambda m: m.group(1) + d + "/", a)
            args.append(a)
        check_config(args)
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        for flag in ("http-address", "grpc-address", "remote-write.address"):
            p = listen_port(c["args"], flag)
            assert p is None or p in ports.values(), f"--{flag} port {p} not among the container's ports {ports}"
        for probe, path in (("livenessProbe", "/-/healthy"), ("readinessProbe", "/-/ready")):
            g = c.get(probe, {}).get("httpGet", {})
            assert g.get("path") == path, f"{probe} is not httpGet {path}: {c.get(probe)}"
            assert g.get("port") in ports and ports[g["port"]] == listen_port(c["args"], "http-address"), \
                f"{probe} port {g.get('port')} is not the --http-address port"
        req = c.get("resources", {}).get("requests", {})
        assert req.get("cpu") and req.get("memory"), f"no cpu/memory requests: {c.get('resources')}"
    return t


def strata_containers():
    for f, w in WORKLOADS:
        for c in w["spec"]["template"]["spec"]["containers"]:
            if c["image"].split(":")[0] == "strata":
                yield f, w, c


def t_k8s_services():
    for f, s in DOCS:
        if s["kind"] != "Service":
            continue
        sel = s["spec"]["selector"]
        pods = [w for _, w in WORKLOADS
                if all(w["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in sel.items())]
        assert pods, f"{f}: Service {s['metadata']['name']} selects no workload"
        names = {p["name"] for w in pods for c in w["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
        for p in s["spec"]["ports"]:
            assert p["targetPort"] in names, f"{f}: Service {s['metadata']['name']} targets port {p['targetPort']} " \
                                             f"that its pods do not name ({sorted(names)})"
    for _, w in WORKLOADS:
        sel = w["spec"]["selector"]["matchLabels"]
        labels = w["spec"]["template"]["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in sel.items()), f"{w['metadata']['name']}: selector does not match its pods"
        if w["kind"] == "StatefulSet":
            by_name("Service", w["spec"]["serviceName"])


def t_k8s_peer_configs():
    """The Prometheus and Alertmanager configurations the manifests mount, checked by their own tools; the
    rules ConfigMap is the example rule file."""
    d = os.path.join(TMP, "peers")
    os.makedirs(d, exist_ok=True)
    for cm, key, argv in (("prometheus", "prometheus.yml", ["promtool", "check", "config"]),
                          ("alertmanager", "alertmanager.yml", ["amtool", "check-config"])):
        f = os.path.join(d, key)
        with open(f, "w") as fh:
            fh.write(by_name("ConfigMap", cm)["data"][key])
        peer(argv + [f])
    with open(os.path.join(EXAMPLES, "rules", "strata.yml")) as fh:
        assert by_name("ConfigMap", "strata-rules")["data"]["strata.yml"] == fh.read(), \
            "ConfigMap strata-rules (kubernetes/rule.yaml) differs from examples/rules/strata.yml"


def flag_values(args, flag):
    return [a.split("=", 1)[1] for a in args if a.startswith(f"--{flag}=")]


def t_k8s_receive_ring():
    """The receivers' hashring lists every pod of the StatefulSet by its stable DNS name, each pod names
    itself the same way, and every receiver and router routes with the same ring, algorithm and
    replication factor (which the ring can hold)."""
    sts = by_name("StatefulSet", "strata-receive")
    ns, svc, n = sts["metadata"]["namespace"], sts["spec"]["serviceName"], sts["spec"]["replicas"]
    c = sts["spec"]["template"]["spec"]["containers"][0]
    grpc = listen_port(c["args"], "grpc-address")
    want = [f"{sts['metadata']['name']}-{i}.{svc}.{ns}.svc.cluster.local:{grpc}" for i in range(n)]
    cm = by_name("ConfigMap", "strata-receive-hashring")
    rings = json.loads(cm["data"]["hashrings.json"])
    assert sorted(e for r in rings for e in r["endpoints"]) == want, f"hashring {rings} != the pods {want}"
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in c.get("env", [])}
    assert flag_values(c["args"], "receive.local-endpoint") == [f"$(NAME).{svc}.{ns}.svc.cluster.local:{grpc}"] \
        and env.get("NAME") == "metadata.name", "--receive.local-endpoint is not the pod's name in the hashring"
    routing = set()
    for _, w, rc in strata_containers():
        if rc["args"][0] == "receive":
            vols = {v["name"]: v for v in w["spec"]["template"]["spec"].get("volumes", [])}
            ring_cms = {vols[m["name"]]["configMap"]["name"] for m in rc.get("volumeMounts", [])
                        if "configMap" in vols.get(m["name"], {})}
            routing.add((tuple(ring_cms), tuple(flag_values(rc["args"], "receive.hashrings-algorithm")),
                         tuple(flag_values(rc["args"], "receive.replication-factor"))))
    assert len(routing) == 1, f"receivers and routers route differently: {routing}"
    rf = int(next(iter(routing))[2][0])
    assert n >= rf, f"{n} receivers cannot hold replication factor {rf}"


def t_k8s_query_sees_all():
    """The queriers ask every StoreAPI workload (through its headless Service's SRV records) and
    deduplicate on every replica label a workload sets from its pod name."""
    q = next(c for _, _, c in strata_containers() if c["args"][0] == "query")
    eps, replicas = flag_values(q["args"], "endpoint"), set(flag_values(q["args"], "query.replica-label"))
    for _, w, c in strata_containers():
        router = c["args"][0] == "receive" and not flag_values(c["args"], "receive.local-endpoint")
        if c["args"][0] not in ("sidecar", "store", "receive", "rule") or router:
            continue  # a receive router stores no data
        svc, ns = w["spec"].get("serviceName"), w["metadata"]["namespace"]
        assert f"dnssrv+_grpc._tcp.{svc}.{ns}.svc.cluster.local" in eps, \
            f"the queriers do not ask {w['metadata']['name']} (--endpoint=dnssrv+_grpc._tcp.{svc}...)"
        for lab in flag_values(c["args"], "label"):
            name, _, val = lab.partition("=")
            if "$(NAME)" in val:
                assert name in replicas, f"the queriers do not deduplicate on {name} ({w['metadata']['name']})"


def t_kustomization():
    with open(f"{DEPLOY}/kubernetes/kustomization.yaml") as fh:
        k = yaml.safe_load(fh)
    files = sorted(os.path.basename(f) for f in glob.glob(f"{DEPLOY}/kubernetes/*.yaml"))
    files.remove("kustomization.yaml")
    assert sorted(k["resources"]) == files, f"kustomization resources {sorted(k['resources'])} != files {files}"
    assert any(i["name"] == "strata" for i in k.get("images", [])), "no images: entry for the strata image"


# ---------------------------------------------------------------- every server command
def t_honours_check_config(cmd):
    def t():
        h = COMMANDS[tuple(cmd.split())]
        base = cmd.split() + ["--http-address=127.0.0.1:0"]
        if "--grpc-address=" in h:
            base.append("--grpc-address=127.0.0.1:0")
        if "--objstore.config=" in h:
            base.append(f"--objstore.config={FS_OBJSTORE}")
        try:
            r = run(base + ["--check-config"], timeout=15)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"strata {cmd} --check-config kept running: call cmd_check_config() (src/cmd/cmd.h) "
                                 "once the configuration is loaded, before serving")
        assert (r.returncode == 0 and "configuration OK" in r.stdout) or (r.returncode != 0 and r.stderr.strip()), \
            f"exit {r.returncode}, stdout {r.stdout!r}, stderr {r.stderr!r}"
        r = run(base + ["--http-address=no-such-host.invalid:10902", "--check-config"], timeout=15)
        assert r.returncode == 2 and "no-such-host.invalid:10902" in r.stderr, \
            f"a bad --http-address: exit {r.returncode}, stderr {r.stderr!r}"
        if "--objstore.config=" in h:
            bad = os.path.join(TMP, "bad-objstore.yml")
            with open(bad, "w") as fh:
                fh.write("type: S3\nconfig:\n  bucket: x\n  no_such_key: 1\n")
            r = run([a for a in base if not a.startswith("--objstore.config=")] +
                    [f"--objstore.config-file={bad}", "--check-config"], timeout=15)
            assert r.returncode != 0 and "no_such_key" in r.stderr, \
                f"a bad objstore file: exit {r.returncode}, stderr {r.stderr!r}"
    return t


def t_deploy_files_cover(cmd):
    """Every server command has a systemd unit and a Kubernetes workload (checked above)."""
    def t():
        unit = os.path.join(DEPLOY, "systemd", f"strata-{cmd.replace(' ', '-')}.service")
        missing = [] if os.path.exists(unit) else [f"systemd unit {os.path.relpath(unit, ROOT)}"]
        if not any(c["args"][:len(cmd.split())] == cmd.split() for _, _, c in strata_containers()):
            missing.append("Kubernetes workload (deploy/kubernetes)")
        assert not missing, f"`strata {cmd}` has no {' and no '.join(missing)}"
    return t


# ---------------------------------------------------------------- container image
def dpkg_owner(path):
    """The Debian package holding path (usrmerge: also tried without /usr), or None."""
    for p in (path, re.sub(r"^/usr/lib/", "/lib/", path), re.sub(r"^/usr/bin/", "/bin/", path)):
        r = subprocess.run(["dpkg", "-S", p], capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout.split(":")[0]
    return None


def dockerfile_packages(stage):
    """Packages the apt-get install of Dockerfile stage `stage` (1 = build, -1 = runtime; 0 is the header) installs."""
    with open(f"{DEPLOY}/Dockerfile") as fh:
        stages = fh.read().split("\nFROM ")
    line = stages[stage].split("--no-install-recommends", 1)[1].split("&&")[0]
    return set(re.findall(r"[a-z0-9][a-z0-9.+-]+", line.replace("\\\n", " ")))


def t_dockerfile_build_packages():
    with open(os.path.join(ROOT, "CMakeLists.txt")) as fh:
        cm = fh.read()
    files = [shutil.which(p) or f"<program {p}>" for p in re.findall(r"find_program\(\w+ ([\w.+-]+) REQUIRED\)", cm)]
    for m in re.findall(r"pkg_check_modules\(\w+ REQUIRED IMPORTED_TARGET ([\w.+-]+)\)", cm):
        d = subprocess.run(["pkg-config", "--variable=pcfiledir", m], capture_output=True, text=True).stdout.strip()
        files.append(f"{d}/{m}.pc")
    for lib in re.findall(r"find_library\(\w+ ([\w.+-]+) REQUIRED\)", cm):
        files.append(os.path.normpath(subprocess.run(["cc", f"-print-file-name=lib{lib}.so"], capture_output=True,
                                                     text=True).stdout.strip()))
    assert len(files) >= 10, files
    build = dockerfile_packages(1)
    missing = []
    for f in files:
        pkg = dpkg_owner(f) or dpkg_owner(os.path.realpath(f))
        assert pkg, f"{f} (required by CMakeLists.txt) belongs to no Debian package"
        if pkg not in build:
            missing.append(f"{pkg} ({f})")
    assert not missing, f"the build stage does not install: {', '.join(missing)}"


def t_dockerfile_runtime_libs():
    runtime = dockerfile_packages(-1)
    needed = re.findall(r"\(NEEDED\).*\[(.+)\]", subprocess.run(["readelf", "-d", STRATA], capture_output=True,
                                                                 text=True).stdout)
    ldd = dict(re.findall(r"^\s*(\S+) => (\S+)", subprocess.run(["ldd", STRATA], capture_output=True, text=True).stdout,
                          re.M))
    missing = []
    for lib in needed:
        real = os.path.realpath(ldd[lib])
        pkg = dpkg_owner(real)
        assert pkg, f"{lib} ({real}) belongs to no Debian package"
        if pkg not in runtime and pkg != "libc6":
            missing.append(f"{lib} ({pkg})")
    assert not missing, f"the runtime stage does not install: {', '.join(missing)}"


def main():
    try:
        assert SERVERS, "strata --help lists no server command"
        check("yaml_parses", t_yaml_parses)
        check("examples_parse", t_examples)
        for u in sorted(glob.glob(f"{DEPLOY}/systemd/*.service")):
            check(f"systemd:{os.path.basename(u)}", t_unit(u))
        for f, w, c in strata_containers():
            check(f"kubernetes:{f}:{w['metadata']['name']}:{c['name']}", t_k8s_container(f, w, c))
        check("kubernetes:services", t_k8s_services)
        check("kubernetes:kustomization", t_kustomization)
        check("kubernetes:peer_configs", t_k8s_peer_configs)
        check("kubernetes:receive_hashring", t_k8s_receive_ring)
        check("kubernetes:query_sees_all", t_k8s_query_sees_all)
        for cmd in SERVERS:
            check(f"check_config_honoured:{cmd}", t_honours_check_config(cmd))
            check(f"deploy_files:{cmd}", t_deploy_files_cover(cmd))
        check("dockerfile_build_packages", t_dockerfile_build_packages)
        check("dockerfile_runtime_libs", t_dockerfile_runtime_libs)
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    return 1 if harness.failed else 0


if __name__ == "__main__":
    sys.exit(main())
