"""Certificates for TLS tests, made with the `openssl` command (EC P-256 keys: fast to make and use).

make_certs(dir) writes, under dir:
  ca.crt/ca.key                 the test CA
  server.crt/.key               CN=strata-server, SANs localhost, 127.0.0.1 (serverAuth)
  server2.crt/.key              a second server certificate from the same CA (CN=strata-server-2), for rotation
  client.crt/.key               CN=strata-client, SAN DNS:client.strata.test (clientAuth)
  untrusted-ca.crt/.key         another CA nobody trusts
  untrusted-client.crt/.key     a client certificate from the untrusted CA
and returns dir. client_cert(dir, name, subject) adds a client certificate from the test CA with a subject of
its own ("/O=team-a/OU=ops/CN=prom-a": tenants from certificates). bcrypt_hash(password) gives a $2y$ hash
(libxcrypt through Python's crypt module).
"""
import os
import subprocess
import warnings


def _run(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _key(name, cwd):
    _run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", name + ".key", cwd=cwd)


def _ca(name, cn, cwd):
    _key(name, cwd)
    _run("req", "-x509", "-new", "-key", name + ".key", "-out", name + ".crt", "-days", "2", "-subj", "/CN=" + cn,
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=cwd)


def _leaf(name, cn, ca, ext, cwd, subject=None):
    _key(name, cwd)
    _run("req", "-new", "-key", name + ".key", "-out", name + ".csr", "-subj", subject or "/CN=" + cn, cwd=cwd)
    with open(os.path.join(cwd, name + ".ext"), "w") as f:
        f.write(ext)
    _run("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key", "-CAcreateserial",
         "-out", name + ".crt", "-days", "2", "-extfile", name + ".ext", cwd=cwd)


SERVER_EXT = "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n"
CLIENT_EXT = "subjectAltName=DNS:client.strata.test\nextendedKeyUsage=clientAuth\n"


def make_certs(d):
    os.makedirs(d, exist_ok=True)
    _ca("ca", "strata-test-ca", d)
    _leaf("server", "strata-server", "ca", SERVER_EXT, d)
    _leaf("server2", "strata-server-2", "ca", SERVER_EXT, d)
    _leaf("client", "strata-client", "ca", CLIENT_EXT, d)
    _ca("untrusted-ca", "someone-else", d)
    _leaf("untrusted-client", "strata-client", "untrusted-ca", CLIENT_EXT, d)
    return d


def client_cert(d, name, subject):
    _leaf(name, None, "ca", CLIENT_EXT, d, subject=subject)
    return os.path.join(d, name + ".crt"), os.path.join(d, name + ".key")


def subject_cn(pem_der_or_path):
    """CN of a certificate file."""
    out = subprocess.run(["openssl", "x509", "-noout", "-subject", "-nameopt", "multiline", "-in", pem_der_or_path],
                         check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("commonName"):
            return line.split("=", 1)[1].strip()
    return ""


def bcrypt_hash(password, cost=10):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    h = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << cost))
    # libxcrypt makes $2b$; exporter-toolkit's docs use $2y$ (same algorithm): test that form.
    return "$2y$" + h[4:]
