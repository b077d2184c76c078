"""Your first twistedpic program: a registry of two models on a simulated 10 GiB GPU.

Run with the library on the loader's path, or point TWISTEDPIC_LIBRARY at it:
    TWISTEDPIC_LIBRARY=build/libtwistedpic.so PYTHONPATH=bindings/python python examples/python/list_models.py
"""

import twistedpic

CONFIG = """{
  "models": {
    "sd35_large":  {"model_id": "stabilityai/stable-diffusion-3.5-large",  "pipeline_type": "sd3",
                    "size_bytes": "6GiB"},
    "sd35_medium": {"model_id": "stabilityai/stable-diffusion-3.5-medium", "pipeline_type": "sd3",
                    "size_bytes": "3GiB"}
  }
}"""
GiB = 1 << 30


def main():
    events = []
    # A simulated device needs no GPU: each model's "size_bytes" says how much memory it takes.
    with twistedpic.Registry.from_string(CONFIG, simulated_device_bytes=10 * GiB) as registry:
        registry.subscribe(events.append)  # residency events: a model moved between device, host and disk

        # A lease keeps the model on the device until the `with` block ends.
        with registry.acquire("sd35_medium") as lease:
            print(f"leased {lease.name}: {lease.device_bytes / GiB:.1f} GiB on the device\n")

        print(f"{'model':<12} {'state':<10} {'tier':<6} {'device bytes':>14}")
        for model in registry.models():
            print(f"{model.name:<12} {model.state:<10} {model.tier:<6} {model.device_bytes:>14,}")

    print("\nevents:")
    for e in events:
        print(f"  {e.model}: {e.from_tier} -> {e.to_tier} ({e.reason}, {e.bytes / GiB:.1f} GiB, {e.ms:.2f} ms)")


if __name__ == "__main__":
    main()
