"""A listener in its own process, so a test can freeze it (SIGSTOP) like a locked phone."""

import asyncio
import sys

from tests.listener import Listener


async def main(url: str) -> None:
    listener = await Listener(url, keep_audio=False).connect()
    await listener.wait_chunks(10)
    print("receiving", flush=True)
    while True:
        await asyncio.sleep(1)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
