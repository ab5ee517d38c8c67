"""A scripted browser for the OIDC tests: follows redirects between the gateway (every host
but the provider's is reached at the gateway's port) and the OpenID provider, keeps cookies per
host, and fills the provider's development login and consent forms.

Usage: oidc_browser.py GATEWAY_PORT PROVIDER_PORT SCENARIO
Prints one JSON report of what happened (statuses, locations, what the backend saw).
"""

import http.client
import json
import re
import sys
import time
import urllib.parse

GATEWAY_PORT = int(sys.argv[1])
PROVIDER_PORT = int(sys.argv[2])
SCENARIO = sys.argv[3]


BROWSER_HISTORY = []


class Browser:
    def __init__(self):
        self.jar = {}  # host -> {name: value}
        self.history = BROWSER_HISTORY

    def request(self, method, url, body=None, headers=None):
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
        port = PROVIDER_PORT if parts.port == PROVIDER_PORT else GATEWAY_PORT
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        sent = dict(headers or {})
        sent["Host"] = parts.netloc
        cookies = self.jar.get(host, {})
        if cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        if body is not None:
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        data = response.read()
        set_cookies = response.headers.get_all("Set-Cookie") or []
        for line in set_cookies:
            name, _, rest = line.partition("=")
            value = rest.split(";", 1)[0]
            attributes = rest.lower()
            expired = "max-age=0" in attributes or "expires=thu, 01 jan 1970" in attributes
            if value in ("", "deleted") or expired:
                self.jar.get(host, {}).pop(name.strip(), None)
            else:
                self.jar.setdefault(host, {})[name.strip()] = value
        step = {
            "method": method,
            "url": url,
            "status": response.status,
            "location": response.headers.get("Location"),
            "set_cookies": set_cookies,
        }
        self.history.append(step)
        return response.status, response.headers, data

    def navigate(self, url, method="GET", body=None, headers=None, limit=15):
        """Follows redirects (303 and 302 become GETs); the last answer."""
        for _ in range(limit):
            status, answer_headers, data = self.request(method, url, body, headers)
            if status not in (301, 302, 303, 307, 308):
                return status, answer_headers, data, url
            url = urllib.parse.urljoin(url, answer_headers["Location"])
            method, body, headers = "GET", None, None
        raise RuntimeError("too many redirects")

    def log_in(self, url, user):
        """Opens `url`, logs in at the provider and consents; the final answer."""
        status, headers, data, at = self.navigate(url)
        for _ in range(4):
            page = data.decode("utf-8", "replace")
            form = re.search(r'<form[^>]*action="([^"]+)"[^>]*method="post"', page)
            if status != 200 or not form:
                return status, headers, data, at
            action = urllib.parse.urljoin(at, form.group(1))
            fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
            if 'name="login"' in page:
                fields.update({"login": user, "password": "any"})
            body = urllib.parse.urlencode(fields)
            status, headers, data, at = self.navigate(action, "POST", body)
        return status, headers, data, at


def echoed(data):
    try:
        return json.loads(data)
    except ValueError:
        return {"raw": data.decode("utf-8", "replace")}


def userinfo(bearer):
    connection = http.client.HTTPConnection("127.0.0.1", PROVIDER_PORT, timeout=10)
    connection.request("GET", "/me", headers={"Authorization": bearer})
    response = connection.getresponse()
    return response.status, echoed(response.read())


def login_refresh_logout():
    browser = Browser()
    report = {}
    status, _, data, at = browser.log_in("http://app.example/private?x=1", "alice")
    report["login"] = {"status": status, "at": at, "seen": echoed(data)}
    report["first_redirect"] = browser.history[0]
    report["app_cookies"] = sorted(browser.jar.get("app.example", {}))
    bearer = report["login"]["seen"].get("headers", {}).get("authorization", [None])[0]
    report["userinfo"] = userinfo(bearer) if bearer else None

    # The session alone: no provider in the way.
    before = len(browser.history)
    status, _, data, at = browser.navigate("http://app.example/private/again")
    report["again"] = {"status": status, "steps": len(browser.history) - before, "seen": echoed(data)}

    # After the access token's lifetime: refreshed silently.
    time.sleep(3.2)
    before = len(browser.history)
    status, _, data, at = browser.navigate("http://app.example/private/later")
    seen = echoed(data)
    report["refreshed"] = {
        "status": status,
        "steps": len(browser.history) - before,
        "set_cookies": browser.history[-1]["set_cookies"],
        "authorization": seen.get("headers", {}).get("authorization", [None])[0],
    }
    new_bearer = report["refreshed"]["authorization"]
    report["refreshed"]["userinfo"] = userinfo(new_bearer) if new_bearer else None

    # Logout: cookies cleared, the provider's end-session endpoint next.
    status, headers, _ = browser.request("GET", "http://app.example/logout")
    report["logout"] = {
        "status": status,
        "location": headers.get("Location"),
        "app_cookies": sorted(browser.jar.get("app.example", {})),
    }
    status, headers, _ = browser.request("GET", "http://app.example/private")
    report["after_logout"] = {"status": status, "location": headers.get("Location")}
    return report


try:
    print(json.dumps({"login-refresh-logout": login_refresh_logout}[SCENARIO]()))
except Exception:
    # What happened until then, for the test's failure message.
    for step in BROWSER_HISTORY:
        print(json.dumps(step), file=sys.stderr)
    raise
