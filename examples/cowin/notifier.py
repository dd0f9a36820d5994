#!/usr/bin/env python3
"""A slot notifier in the style of 2021: polls CoWIN's calendarByDistrict and prints the
sessions with open places. Python 3 standard library only.

    python3 notifier.py --base http://127.0.0.1:8080 --district 312 [--age 18] [--dose 1]
                        [--vaccine COVISHIELD] [--every-s 30] [--once]
"""

import argparse
import datetime
import json
import sys
import time
import urllib.error
import urllib.request

IST = datetime.timezone(datetime.timedelta(hours=5, minutes=30))


def calendar(base, district, vaccine):
    today = datetime.datetime.now(IST).strftime("%d-%m-%Y")
    url = (f"{base}/api/v2/appointment/sessions/public/calendarByDistrict"
           f"?district_id={district}&date={today}")
    if vaccine:
        url += f"&vaccine={vaccine}"
    req = urllib.request.Request(url, headers={"accept": "application/json",
                                               "User-Agent": "Mozilla/5.0"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


def open_sessions(answer, age, dose):
    key = f"available_capacity_dose{dose}"
    for centre in answer.get("centers", []):
        for s in centre["sessions"]:
            if s[key] <= 0 or s["min_age_limit"] > age:
                continue
            if "max_age_limit" in s and s["max_age_limit"] < age:
                continue
            yield centre, s


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="http://127.0.0.1:8080")
    p.add_argument("--district", type=int, default=312)
    p.add_argument("--age", type=int, default=18)
    p.add_argument("--dose", type=int, choices=(1, 2), default=1)
    p.add_argument("--vaccine", default="")
    p.add_argument("--every-s", type=float, default=30.0)
    p.add_argument("--once", action="store_true")
    a = p.parse_args()
    while True:
        try:
            answer = calendar(a.base, a.district, a.vaccine)
            found = list(open_sessions(answer, a.age, a.dose))
            stamp = datetime.datetime.now(IST).strftime("%H:%M:%S")
            print(f"[{stamp}] {len(found)} open sessions in district {a.district}")
            for centre, s in found:
                print(f"  {s['date']}  {centre['name']} ({centre['pincode']}, "
                      f"{centre['fee_type']})  {s['vaccine']}  {s['min_age_limit']}+  "
                      f"dose{a.dose}: {s[f'available_capacity_dose{a.dose}']}  "
                      f"slots: {', '.join(s['slots'])}")
        except urllib.error.HTTPError as e:
            wait = e.headers.get("Retry-After")
            print(f"HTTP {e.code}: {e.read().decode(errors='replace')}"
                  + (f" (retry after {wait} s)" if wait else ""), file=sys.stderr)
            if e.code == 429 and wait:
                time.sleep(float(wait))
        except (urllib.error.URLError, OSError) as e:
            print(f"cannot reach {a.base}: {e}", file=sys.stderr)
        if a.once:
            return
        time.sleep(a.every_s)


if __name__ == "__main__":
    main()
