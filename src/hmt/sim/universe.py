"""The instruments the simulator trades: real NSE tokens, symbols and tick sizes.

Tokens follow Kite's rule `instrument_token = (exchange_token << 8) | segment`
(FACTS 1.6). Rows that appear in the instruments_nse.csv fixture use its values
(tick 0.05 there, from an older dump); the rest use the NSE tick-size bands in
force since April 2025 (below 250: 0.01, to 1000: 0.05, to 5000: 0.10, to
10000: 0.50, to 20000: 1.00). Start prices are round figures near recent
levels: they are the simulated previous close, not market data. Two NFO
options come from instruments_all.csv, values unchanged (their last price is
the start price), so that lot sizes above 1 can be tested.

The segment numbers and divisors are the simulator's own copy of Kite's rules
(the simulator imports no other adapter, and keeps its own view of Kite).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal

NSE_SEGMENT = 1
NFO_SEGMENT = 2
INDICES_SEGMENT = 9
# Wire units per rupee by segment (FACTS 1.6): the simulator's own copy of Kite's
# rule, not the client's (`hmt.kite.segments`): adapters never import each other,
# and an emulator that shared the client's table could not catch a mistake in it.
# Every segment Kite names is here, so a test universe may list currency too.
SEGMENT_DIVISORS = {
    NSE_SEGMENT: 100,
    NFO_SEGMENT: 100,
    3: 10_000_000,  # CDS, NSE currency
    4: 100,  # BSE
    5: 100,  # BFO
    6: 10_000,  # BCD, BSE currency
    7: 100,  # MCX
    8: 100,  # MCXSX
    INDICES_SEGMENT: 100,
    12: 10_000,  # NCO, NSE commodity
}

# The instrument dump's columns, in Kite's order (fixtures/instruments_nse.csv).
CSV_COLUMNS = (
    "instrument_token",
    "exchange_token",
    "tradingsymbol",
    "name",
    "last_price",
    "expiry",
    "strike",
    "tick_size",
    "lot_size",
    "instrument_type",
    "segment",
    "exchange",
)


@dataclass(frozen=True, slots=True)
class Instrument:
    """One instrument: identity, price grid and random-walk parameters."""

    exchange_token: int
    tradingsymbol: str
    name: str
    tick: int  # tick size in wire units (paise for NSE)
    close: int  # previous close in wire units: the walk starts here
    volatility: float = 0.25  # annualised, for the random walk
    tick_rate: float = 2.0  # trades per second in the random walk
    segment: int = NSE_SEGMENT
    lot_size: int = 1
    exchange: str = "NSE"
    kind: str = "EQ"  # the dump's instrument_type: EQ, FUT, CE, PE
    expiry: str = ""  # derivatives: YYYY-MM-DD
    strike: str = "0.0"

    @property
    def token(self) -> int:
        """Kite's instrument_token."""
        return (self.exchange_token << 8) | self.segment

    @property
    def is_index(self) -> bool:
        """Indices stream but cannot be traded."""
        return self.segment == INDICES_SEGMENT

    @property
    def divisor(self) -> int:
        """Wire units per rupee for this instrument's segment."""
        return SEGMENT_DIVISORS[self.segment]

    @property
    def key(self) -> str:
        """The `EXCHANGE:TRADINGSYMBOL` form the quote endpoints use."""
        return f"{self.exchange}:{self.tradingsymbol}"

    def csv_row(self) -> list[str]:
        """This instrument as a row of Kite's instrument dump."""
        if self.is_index:  # Kite lists indices with no tick or lot size
            tick, lot, segment = "0.0", "0", "INDICES"
        else:
            tick, lot = str(Decimal(self.tick) / self.divisor), str(self.lot_size)
            segment = self.exchange if self.kind == "EQ" else f"{self.exchange}-{self._family}"
        last = "0.0" if self.kind == "EQ" else str(Decimal(self.close) / self.divisor)
        return [
            str(self.token),
            str(self.exchange_token),
            self.tradingsymbol,
            self.name,
            last,
            self.expiry,
            self.strike,
            tick,
            lot,
            self.kind,
            segment,
            self.exchange,
        ]

    @property
    def _family(self) -> str:
        return "FUT" if self.kind == "FUT" else "OPT"


def _eq(
    exchange_token: int,
    symbol: str,
    name: str,
    tick: int,
    close: int,
    vol: float = 0.25,
    rate: float = 2.0,
) -> Instrument:
    return Instrument(exchange_token, symbol, name, tick, close, vol, rate)


def _index(exchange_token: int, name: str, close: int) -> Instrument:
    # Index values move on a 0.05 grid here; they have no tradable tick size.
    return Instrument(
        exchange_token, name, name, 5, close, 0.15, 1.0, segment=INDICES_SEGMENT, lot_size=0
    )


def _option(
    exchange_token: int, symbol: str, kind: str, expiry: str, strike: str, lot: int, close: int
) -> Instrument:
    # Tick 0.05 as in the fixture; options move fast, hence the volatility.
    return Instrument(
        exchange_token,
        symbol,
        "",
        5,
        close,
        0.60,
        1.0,
        segment=NFO_SEGMENT,
        lot_size=lot,
        exchange="NFO",
        kind=kind,
        expiry=expiry,
        strike=strike,
    )


DEFAULT_INSTRUMENTS: tuple[Instrument, ...] = (
    _eq(1594, "INFY", "INFOSYS", 10, 155_000),
    _eq(2885, "RELIANCE", "RELIANCE INDUSTRIES", 10, 140_000),
    _eq(11536, "TCS", "TATA CONSULTANCY SERV LT", 10, 310_000),
    _eq(1333, "HDFCBANK", "HDFC BANK", 5, 98_500),
    _eq(4963, "ICICIBANK", "ICICI BANK", 10, 140_000),
    _eq(3045, "SBIN", "STATE BANK OF INDIA", 5, 85_000),
    _eq(3499, "TATASTEEL", "TATA STEEL", 1, 16_000, 0.35),
    _eq(1624, "IOC", "INDIAN OIL CORP", 1, 14_500),
    _eq(438, "BHEL", "BHEL", 1, 24_000, 0.40),
    _eq(1660, "ITC", "ITC", 5, 41_000, 0.20),
    _eq(5900, "AXISBANK", "AXIS BANK", 10, 115_000),
    _eq(1922, "KOTAKBANK", "KOTAK MAHINDRA BANK", 10, 210_000),
    _eq(11483, "LT", "LARSEN & TOUBRO", 10, 380_000),
    _eq(3787, "WIPRO", "WIPRO", 1, 24_500),
    _eq(1394, "HINDUNILVR", "HINDUSTAN UNILEVER", 10, 240_000, 0.20),
    _eq(10604, "BHARTIARTL", "BHARTI AIRTEL", 10, 195_000),
    _eq(10999, "MARUTI", "MARUTI SUZUKI INDIA", 100, 1_250_000),
    _eq(11630, "NTPC", "NTPC", 5, 34_000),
    _eq(2475, "ONGC", "OIL AND NATURAL GAS CORP", 1, 24_000),
    _eq(317, "BAJFINANCE", "BAJAJ FINANCE", 5, 90_000, 0.35),
    _eq(236, "ASIANPAINT", "ASIAN PAINTS", 10, 240_000),
    _eq(3351, "SUNPHARMA", "SUN PHARMACEUTICAL IND L", 10, 165_000),
    _eq(7229, "HCLTECH", "HCL TECHNOLOGIES", 10, 150_000),
    _eq(3506, "TITAN", "TITAN COMPANY", 10, 340_000),
    _eq(14977, "POWERGRID", "POWER GRID CORP", 5, 29_000),
    _eq(11532, "ULTRACEMCO", "ULTRATECH CEMENT", 100, 1_180_000),
    # These four come from the instruments_nse.csv fixture, values unchanged.
    _eq(15083, "ADANIPORTS", "ADANI PORT & SEZ", 5, 140_000, 0.35),
    _eq(21174, "CDSL", "CENTRAL DEPO SER (I)", 5, 155_000, 0.45),
    _eq(11262, "IGL", "INDRAPRASTHA GAS", 5, 21_000),
    _eq(11439, "BANKBEES", "RELIANCE ETF BANK BEES", 1, 57_000, 0.15),
    # From the instruments_all.csv fixture, values unchanged: F&O lots above 1.
    _option(47164, "BANKNIFTY18JAN23500CE", "CE", "2018-01-25", "23500.0", 40, 252_840),
    _option(53489, "ADANIPORTS17DEC490PE", "PE", "2017-12-28", "490.0", 2500, 8_065),
    _index(1001, "NIFTY 50", 2_500_000),
    _index(1016, "NIFTY BANK", 5_500_000),
)


class Universe:
    """Instruments looked up by token or by `EXCHANGE:TRADINGSYMBOL`."""

    def __init__(self, instruments: Iterable[Instrument] = DEFAULT_INSTRUMENTS) -> None:
        self._by_token: dict[int, Instrument] = {}
        self._by_key: dict[str, Instrument] = {}
        for instrument in instruments:
            if instrument.token in self._by_token or instrument.key in self._by_key:
                raise ValueError(f"{instrument.key} ({instrument.token}) is listed twice")
            self._by_token[instrument.token] = instrument
            self._by_key[instrument.key] = instrument

    def __iter__(self) -> Iterator[Instrument]:
        return iter(self._by_token.values())

    def __len__(self) -> int:
        return len(self._by_token)

    def __contains__(self, token: object) -> bool:
        return token in self._by_token

    def get(self, token: int) -> Instrument | None:
        """The instrument with this token, if it is listed."""
        return self._by_token.get(token)

    def by_key(self, key: str) -> Instrument | None:
        """The instrument for `EXCHANGE:TRADINGSYMBOL`, if it is listed."""
        return self._by_key.get(key)

    def instruments_csv(self, exchange: str | None = None) -> str:
        """Kite's instrument dump (GET /instruments[/{exchange}]) as CSV text."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for instrument in self:
            if exchange is None or instrument.exchange == exchange:
                writer.writerow(instrument.csv_row())
        return out.getvalue()
