#!/usr/bin/env python3
"""An auto-booker in the style of 2021: OTP login (the SHA-256 of the OTP, as CoWIN wanted),
list the beneficiaries, find the first session with places for them, schedule them all in its
first slot, and download the appointment slip. Python 3 standard library only.

The OTP is read from the server's `file:` OTP sender log (one JSON line per OTP), standing in
for the SMS a phone would receive.

    python3 autobook.py --base http://127.0.0.1:8080 --mobile 9876543210 \
        --otp-file /tmp/otp.jsonl --district 312 [--dose 1] [--register]
"""

import argparse
import datetime
import hashlib
import json
import sys
import time
import urllib.error
import urllib.request

IST = datetime.timezone(datetime.timedelta(hours=5, minutes=30))


class Client:
    def __init__(self, base):
        self.base = base
        self.token = None

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        headers = {"accept": "application/json", "User-Agent": "Mozilla/5.0"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=15) as resp:
                text = resp.read().decode()
                return resp.status, (json.loads(text) if text else None)
        except urllib.error.HTTPError as e:
            text = e.read().decode(errors="replace")
            try:
                return e.code, json.loads(text)
            except ValueError:
                return e.code, text


def read_otp(path, mobile, txn_id, wait_s=10.0):
    deadline = time.time() + wait_s
    while time.time() < deadline:
        try:
            with open(path, encoding="utf-8") as f:
                for line in reversed(f.read().splitlines()):
                    rec = json.loads(line)
                    if rec.get("txn_id") == txn_id and rec.get("mobile", "").endswith(mobile[-10:]):
                        return rec["otp"]
        except FileNotFoundError:
            pass
        time.sleep(0.2)
    sys.exit(f"no OTP for {mobile} in {path}")


def save_slip(base, token, appointment_id, path):
    req = urllib.request.Request(
        f"{base}/api/v2/appointment/appointmentslip/download?appointment_id={appointment_id}",
        headers={"Authorization": f"Bearer {token}", "User-Agent": "Mozilla/5.0"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            kind = resp.headers.get("Content-Type")
            body = resp.read()
    except urllib.error.HTTPError as e:
        print(f"slip: HTTP {e.code} {e.read().decode(errors='replace')}", file=sys.stderr)
        return
    with open(path, "wb") as f:
        f.write(body)
    print(f"slip saved to {path} ({kind}, {len(body)} bytes)")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="http://127.0.0.1:8080")
    p.add_argument("--mobile", required=True)
    p.add_argument("--otp-file", required=True)
    p.add_argument("--district", type=int, default=312)
    p.add_argument("--dose", type=int, choices=(1, 2), default=1)
    p.add_argument("--slip", default="appointment-slip.pdf",
                   help="where to save the appointment slip")
    p.add_argument("--register", action="store_true",
                   help="register a demo beneficiary when the account has none")
    a = p.parse_args()
    c = Client(a.base)

    status, ans = c.call("POST", "/api/v2/auth/generateMobileOTP",
                         {"mobile": a.mobile, "secret": "U2FsdGVkX1+demo"})
    if status != 200:
        sys.exit(f"generateMobileOTP: {status} {ans}")
    txn = ans["txnId"]
    otp = read_otp(a.otp_file, a.mobile, txn)
    status, ans = c.call("POST", "/api/v2/auth/validateMobileOtp",
                         {"otp": hashlib.sha256(otp.encode()).hexdigest(), "txnId": txn})
    if status != 200:
        sys.exit(f"validateMobileOtp: {status} {ans}")
    c.token = ans["token"]
    print("logged in")

    status, ans = c.call("GET", "/api/v2/appointment/beneficiaries")
    people = ans["beneficiaries"] if status == 200 else sys.exit(f"beneficiaries: {status} {ans}")
    if not people and a.register:
        # A PAN of the documented shape, derived from the mobile so reruns reuse it.
        pan = "ABCDE" + a.mobile[-4:] + "F"
        status, ans = c.call("POST", "/api/v2/registration/beneficiary/new", {
            "name": "Demo Citizen", "birth_year": "1980", "gender_id": 2, "photo_id_type": 2,
            "photo_id_number": pan, "comorbidity_ind": "N", "consent_version": "V1"})
        print(f"registered: {status} {ans}")
        status, ans = c.call("GET", "/api/v2/appointment/beneficiaries")
        people = ans["beneficiaries"]
    todo = [b for b in people
            if not any(x["dose"] == a.dose for x in b["appointments"])]
    if not todo:
        sys.exit("no beneficiary needs a booking for this dose")
    for b in todo:
        print(f"  {b['beneficiary_reference_id']}  {b['name']} ({b['birth_year']})  "
              f"{b['vaccination_status']}")
    year = datetime.datetime.now(IST).year
    oldest_age = max(year - int(b["birth_year"]) for b in todo)
    youngest_age = min(year - int(b["birth_year"]) for b in todo)

    today = datetime.datetime.now(IST).strftime("%d-%m-%Y")
    status, cal = c.call("GET", "/api/v2/appointment/sessions/public/calendarByDistrict"
                                f"?district_id={a.district}&date={today}")
    if status != 200:
        sys.exit(f"calendarByDistrict: {status} {cal}")
    key = f"available_capacity_dose{a.dose}"
    for centre in cal["centers"]:
        for s in centre["sessions"]:
            fits = (s[key] >= len(todo) and s["min_age_limit"] <= youngest_age
                    and s.get("max_age_limit", 200) >= oldest_age)
            if not fits:
                continue
            body = {"beneficiaries": [b["beneficiary_reference_id"] for b in todo],
                    "dose": a.dose, "session_id": s["session_id"], "slot": s["slots"][0],
                    "center_id": centre["center_id"]}
            status, ans = c.call("POST", "/api/v2/appointment/schedule", body)
            if status == 200:
                no = ans["appointment_confirmation_no"]
                print(f"booked at {centre['name']} on {s['date']} {s['slots'][0]}: "
                      f"confirmation {no}")
                save_slip(a.base, c.token, no, a.slip)
                return
            print(f"  {centre['name']} {s['date']}: {status} {ans}")
    sys.exit("no session had places for everyone")


if __name__ == "__main__":
    main()
