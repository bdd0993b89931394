"""A small token issuer for docker-registry's `auth: token` (the bearer-token flow).

usage: token_server.py PORT CERT KEY ISSUER USER PASSWORD COUNT_FILE

GET /token?service=S&scope=repository:NAME:pull,push&... with HTTP basic USER:PASSWORD
answers {"token": JWT, "expires_in": 300}: an ES256 JWT whose header carries CERT (x5c), so
the registry trusts it through its rootcertbundle (the CA that signed CERT). A wrong password
is a 401; no credentials get a token granting nothing. Each token issued adds a line to
COUNT_FILE. Signing uses the openssl CLI (no Python crypto packages needed).
"""
import base64, http.server, json, os, subprocess, sys, time, urllib.parse

port, cert, key, issuer, user, password, count_file = sys.argv[1:8]
der = subprocess.run(["openssl", "x509", "-in", cert, "-outform", "DER"],
                     check=True, capture_output=True).stdout


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def der_to_raw(sig):
    """ECDSA DER (SEQUENCE{INTEGER r, INTEGER s}) to JOSE's 64-byte r||s."""
    def read_int(b, i):
        assert b[i] == 0x02
        n = b[i + 1]
        return int.from_bytes(b[i + 2:i + 2 + n], "big"), i + 2 + n
    i = 2 if sig[1] < 0x80 else 3
    r, i = read_int(sig, i)
    s, _ = read_int(sig, i)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def sign(claims):
    head = b64(json.dumps({"typ": "JWT", "alg": "ES256",
                           "x5c": [base64.b64encode(der).decode()]}).encode())
    body = b64(json.dumps(claims).encode())
    signing_input = f"{head}.{body}".encode()
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key],
                         input=signing_input, check=True, capture_output=True).stdout
    return f"{head}.{body}.{b64(der_to_raw(sig))}"


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def answer(self, code, obj, extra=()):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        u = urllib.parse.urlparse(self.path)
        if u.path != "/token":
            return self.answer(404, {"errors": [{"code": "NOT_FOUND", "message": u.path}]})
        q = urllib.parse.parse_qs(u.query)
        account = ""
        h = self.headers.get("Authorization", "")
        if h.startswith("Basic "):
            u_, _, p_ = base64.b64decode(h[6:]).decode().partition(":")
            if (u_, p_) != (user, password):
                return self.answer(401, {"errors": [{"code": "UNAUTHORIZED",
                                                     "message": "incorrect username or password"}]},
                                   [("WWW-Authenticate", 'Basic realm="berth-test-tokens"')])
            account = u_
        access = []
        for scope in (s for v in q.get("scope", []) for s in v.split(" ") if s):
            typ, name, actions = scope.split(":", 2) if scope.count(":") >= 2 else ("", "", "")
            if account and typ in ("repository", "registry"):
                access.append({"type": typ, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        token = sign({"iss": issuer, "sub": account, "aud": q.get("service", [""])[0],
                      "exp": now + 300, "nbf": now - 10, "iat": now,
                      "jti": b64(os.urandom(12)), "access": access})
        with open(count_file, "a") as f:
            f.write(" ".join(q.get("scope", [])) + "\n")
        self.answer(200, {"token": token, "expires_in": 300})


http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Handler).serve_forever()
