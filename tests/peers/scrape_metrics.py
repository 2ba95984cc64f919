"""Scrapes a Prometheus endpoint and parses it with the official Python
client's OpenMetrics parser (nobody here wrote it), so a malformed
exposition fails the test. Prints {"name{label=value,...}": value, ...}.

Usage: scrape_metrics.py URL
"""

import json
import sys
import urllib.request

from prometheus_client.openmetrics.parser import text_string_to_metric_families


def main():
    with urllib.request.urlopen(sys.argv[1], timeout=10) as response:
        content_type = response.headers["Content-Type"]
        text = response.read().decode("utf-8")
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    print(json.dumps({"content_type": content_type, "samples": samples}))


if __name__ == "__main__":
    main()
