"""The paper tables of `pogm reproduce`, collected from the model families
(``pogm.models.<family>.paper_table``) and registered in the order `pogm reproduce --list` shows.
"""

from __future__ import annotations

from pogm.models.factvae.paper_table import FACTVAE_MOCAP
from pogm.models.hali.paper_table import HALI_MNIST100
from pogm.models.hybrid.paper_table import HYBRID_VAE
from pogm.models.semi_supervised.paper_table import AUXILIARY_VAE, POSTER_SSL_TABLE, SSL_MNIST100
from pogm.reproduce.table import register_table

PAPER_TABLES = (SSL_MNIST100, POSTER_SSL_TABLE, HYBRID_VAE, FACTVAE_MOCAP, AUXILIARY_VAE, HALI_MNIST100)

for _table in PAPER_TABLES:
    register_table(_table)
