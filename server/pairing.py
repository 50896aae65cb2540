"""Who may play at a party.

A party admits every phone, but two kinds of client arrive:
- browsers (sendspin-js 3.2.1) connect unencrypted with a self-chosen client id;
- native Sendspin clients connect encrypted, unpaired, with an id that is their Noise key.
The library refuses an unencrypted hello that claims a *known* client (downgrade
protection), so approving every id (as an upstream party server does) locks browsers out.
We trust unpaired access only for ids shaped like a Noise peer id: an encrypted client
proved that key in the handshake, and an unencrypted client claiming such an id is refused,
which is exactly what downgrade protection is for.
"""

from __future__ import annotations

from aiosendspin.noise import PEER_ID_SIZE, InMemoryServerPairingStore, TrustedUnpairedClient
from aiosendspin.noise.keys import b64url_decode


def is_noise_peer_id(client_id: str) -> bool:
    if len(client_id) != PEER_ID_SIZE:
        return False
    try:
        return len(b64url_decode(client_id)) == 32
    except ValueError:
        return False


class PartyPairingStore(InMemoryServerPairingStore):
    """In-memory store that trusts encrypted (Noise-keyed) clients for unpaired playback."""

    async def trusted_unpaired(self, client_id: str) -> TrustedUnpairedClient | None:
        known = await super().trusted_unpaired(client_id)
        if known is None and is_noise_peer_id(client_id):
            return TrustedUnpairedClient(client_id)
        return known
