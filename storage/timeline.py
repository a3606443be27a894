"""Sentiment and volume of one entity over time, bucketed in Postgres, for charts.

Each message counts once, with its latest prediction. Net sentiment is the mean of
P(positive) - P(negative), in -1..1.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import connection_errors

_BUCKETS = sa.text(
    """
    with latest as (
        select distinct on (p.message_pk)
            p.message_pk, m.ts, p.sentiment,
            (p.scores->>'positive')::float - (p.scores->>'negative')::float as net
        from predictions p join messages m on m.id = p.message_pk
        where m.tenant = :tenant and m.source = :source and m.entity = :entity
          and m.ts >= :since and m.ts < :until
        order by p.message_pk, p.scored_at desc, p.id desc
    )
    select to_timestamp(floor(extract(epoch from ts) / :bucket_s) * :bucket_s) as start,
           count(*) as volume,
           count(*) filter (where sentiment = 'negative') as negative,
           count(*) filter (where sentiment = 'neutral') as neutral,
           count(*) filter (where sentiment = 'positive') as positive,
           avg(net) as net_sentiment
    from latest group by 1 order by 1
    """
)


@dataclass(frozen=True)
class Bucket:
    start: datetime
    volume: int
    negative: int
    neutral: int
    positive: int
    net_sentiment: float


async def buckets(
    engine: AsyncEngine,
    tenant: str,
    source: str,
    entity: str,
    since: datetime,
    until: datetime,
    bucket_s: int,
) -> list[Bucket]:
    """The entity's non-empty buckets of `bucket_s` seconds in [since, until), oldest first."""
    params = {
        "tenant": tenant, "source": source, "entity": entity, "since": since, "until": until,
        "bucket_s": bucket_s,
    }  # fmt: skip
    with connection_errors():
        async with engine.connect() as conn:
            rows = (await conn.execute(_BUCKETS, params)).all()
    return [
        Bucket(row.start, row.volume, row.negative, row.neutral, row.positive,
               round(float(row.net_sentiment), 4))
        for row in rows
    ]  # fmt: skip
