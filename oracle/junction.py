"""Exact marginals for a batch of queries of *any* structure: one junction tree per network.

The einsum engine (:mod:`oracle.exact`) contracts one structure at a time; a batch of
1,000 queries that each intervene on, observe and ask about different variables would
be 1,000 contractions.  Here every query runs through the same junction tree — the
cliques of the network's triangulated moral graph — in one batched Hugin pass:

- an intervention ``do(X=x)`` replaces X's table, for that query only, by a one-hot
  vector on ``x`` that ignores X's parents.  The moral graph of the cut network is a
  subgraph of the full one, so one tree serves every intervention;
- hard evidence is a one-hot likelihood vector per query, soft evidence (a party's
  observe facts) a likelihood vector, multiplied into a clique holding the variable;
- every tensor carries two leading axes, ``S`` draws of the parameters and ``B``
  queries, each of size 1 where it is shared: a clique that nothing in the batch
  touches is computed once, not once per query.

Messages are normalised per query as they go (no underflow however much is observed);
evidence of probability zero leaves a zero total.  The tree is found once per network
(greedy min-fill elimination, ties to the smaller clique) and kept.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import networkx as nx
import torch

from worldmodel.compile import Network


@dataclass(frozen=True)
class _Clique:
    variables: tuple[str, ...]
    """In the network's topological order (so every separator keeps its order in both cliques)."""
    shape: tuple[int, ...]


def elimination_cliques(
    network: Network, variables: Sequence[str], max_cells: float = math.inf
) -> list[frozenset[str]] | None:
    """The maximal cliques of the moral graph of ``variables`` triangulated by greedy elimination:
    fewest fill-in edges first, ties to the smallest clique (product of cardinalities).  None as
    soon as a clique would hold more than ``max_cells`` numbers."""
    neighbours: dict[str, set[str]] = {v: set() for v in variables}
    for v in variables:
        family = [v, *network.parents[v]]
        for a in family:
            neighbours[a].update(f for f in family if f != a)
    log_card = {v: math.log(network.card(v)) for v in variables}
    limit = math.log(max_cells) + 1e-9 if max_cells >= 1 else -math.inf

    def score(v: str) -> tuple[int, float]:
        around = list(neighbours[v])
        fill = sum(1 for i, a in enumerate(around) for b in around[i + 1 :] if b not in neighbours[a])
        return fill, log_card[v] + sum(log_card[a] for a in around)

    scores = {v: score(v) for v in variables}
    cliques: list[frozenset[str]] = []
    while scores:
        v = min(scores, key=scores.__getitem__)
        around = neighbours.pop(v)
        scores_of_v = scores.pop(v)
        clique = frozenset(around | {v})
        if scores_of_v[1] > limit:
            return None
        if not any(clique <= c for c in cliques):
            cliques.append(clique)
        for a in around:
            neighbours[a].discard(v)
            neighbours[a].update(b for b in around if b != a)
        touched = set(around)
        for a in around:
            touched |= neighbours[a]
        for a in touched:
            scores[a] = score(a)
    return cliques


class JunctionTree:
    """A junction tree of a (discrete) network, and its batched Hugin pass."""

    def __init__(self, network: Network, max_cells: float = math.inf):
        """``max_cells``: give up (``fits`` False) when a clique would hold more numbers."""
        if network.continuous:
            raise ValueError("a junction tree covers discrete networks only")
        self.network = net = network
        position = net.position
        found = elimination_cliques(net, net.order, max_cells)
        self.fits = found is not None
        if found is None:
            return
        self.cliques = [
            _Clique(vs, tuple(net.card(v) for v in vs))
            for vs in (tuple(sorted(c, key=position.__getitem__)) for c in found)
        ]
        # A maximum spanning tree of the clique graph, weighted by separator size, is a junction tree.
        holding: dict[str, list[int]] = {}
        for i, c in enumerate(self.cliques):
            for v in c.variables:
                holding.setdefault(v, []).append(i)
        graph = nx.Graph()
        graph.add_nodes_from(range(len(self.cliques)))
        for members in holding.values():
            for i, a in enumerate(members):
                for b in members[i + 1 :]:
                    if not graph.has_edge(a, b):
                        shared = set(self.cliques[a].variables) & set(self.cliques[b].variables)
                        graph.add_edge(a, b, weight=len(shared))
        tree = nx.maximum_spanning_tree(graph)
        # Root each connected part at its largest clique; parents before children.
        self.parent: dict[int, int | None] = {}
        self.order: list[int] = []
        for part in nx.connected_components(tree):
            root = max(part, key=lambda i: math.prod(self.cliques[i].shape))
            self.parent[root] = None
            for a, b in nx.bfs_edges(tree, root):
                self.parent[b] = a
            self.order.extend([root, *(b for _, b in nx.bfs_edges(tree, root))])
        self.roots = [i for i in self.order if self.parent[i] is None]
        self.children: dict[int, list[int]] = {i: [] for i in self.order}
        for i in self.order:
            if self.parent[i] is not None:
                self.children[self.parent[i]].append(i)
        # Each table (and each variable's evidence) lives in the smallest clique holding its family;
        # each variable's marginal is read from the smallest clique holding it.
        size = [math.prod(c.shape) for c in self.cliques]
        self.family_home: dict[str, int] = {}
        self.home: dict[str, int] = {}
        for v in net.order:
            family = {v, *net.parents[v]}
            self.family_home[v] = min(
                (i for i in holding[v] if family <= set(self.cliques[i].variables)), key=size.__getitem__
            )
            self.home[v] = min(holding[v], key=size.__getitem__)
        self.assigned: dict[int, list[str]] = {i: [] for i in self.order}
        for v in net.order:
            self.assigned[self.family_home[v]].append(v)
        # Per clique: its separator with its parent, the axes summed to send up and down, and
        # the trailing shapes that lay a message into the parent (``_into``) and into itself.
        self._into: dict[int, list[int]] = {}
        self._into_self: dict[int, list[int]] = {}
        self._out: dict[int, list[int]] = {}
        self._down: dict[int, list[int]] = {}
        for i, p in self.parent.items():
            if p is None:
                continue
            separator = [v for v in self.cliques[i].variables if v in set(self.cliques[p].variables)]
            self._into[i] = self._view(p, separator)
            self._into_self[i] = self._view(i, separator)
            self._out[i] = [2 + j for j, v in enumerate(self.cliques[i].variables) if v not in separator]
            self._down[i] = [2 + j for j, v in enumerate(self.cliques[p].variables) if v not in separator]
        self._stores: list[tuple[tuple, dict]] = []
        self.cells = sum(size)
        """Numbers held per query and draw by the clique tables (the pass keeps about twice this)."""

    # -- shapes ------------------------------------------------------------------------------

    def _view(self, clique: int, names: Sequence[str]) -> list[int]:
        """The trailing shape that lays axes ``names`` (in clique order) into the clique's axes."""
        have = set(names)
        return [self.network.card(v) if v in have else 1 for v in self.cliques[clique].variables]

    def _family(self, var: str, table: torch.Tensor) -> torch.Tensor:
        """A ``(S, B or 1, *parents, var)`` table with its axes in clique order, viewed into its home."""
        net = self.network
        axes = [*net.parents[var], var]
        home = self.cliques[self.family_home[var]].variables
        ordered = sorted(range(len(axes)), key=lambda j: home.index(axes[j]))
        table = table.permute(0, 1, *(2 + j for j in ordered))
        return table.reshape(*table.shape[:2], *self._view(self.family_home[var], axes))

    def _vector(self, clique: int, var: str, vec: torch.Tensor) -> torch.Tensor:
        """A ``(B or 1, card)`` vector over ``var`` viewed into a clique, with a leading S of 1."""
        return vec.reshape(1, vec.shape[0], *self._view(clique, [var]))

    # -- the pass -----------------------------------------------------------------------------

    def marginals(
        self,
        tables: Mapping[str, torch.Tensor],
        likelihood: Mapping[str, torch.Tensor],
        do: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
        given: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
        targets: Sequence[str] | Mapping[str, torch.Tensor],
        batch: int,
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """``P(target | do, given, soft evidence)`` of every target, draw and query.

        ``tables[v]``: ``(S, *parents, v)`` or ``(S, B, *parents, v)``; ``likelihood[v]``:
        ``(v,)`` or ``(B, v)``; ``do[v]`` / ``given[v]``: ``(mask, index)``, a bool ``(B,)``
        of the queries that set (see) ``v`` and a long ``(B,)`` of the state they set (see).
        A variable without a table must be set by every query.  ``targets``: names (answered
        for every query) or ``{name: long tensor of the queries that ask about it}``.  Returns
        ``{target: (S, B or those queries, card)}`` normalised over the last axis, and the
        ``(S, B)`` mask of queries whose evidence has probability 0 (their rows are NaN).

        A clique whose subtree nothing in the batch sets or sees sends the same message to
        every query, and the same on every call with the same tables: those messages are kept
        (for the last few sets of tables), so a single query recomputes only the cliques
        between what it touches and the root, and between the root and its targets.
        """
        net = self.network
        wanted = dict(targets) if isinstance(targets, Mapping) else dict.fromkeys(targets)
        like = next(iter(tables.values()))
        kind = {"dtype": like.dtype, "device": like.device}
        samples = max(t.shape[0] for t in tables.values())
        touched = {*do, *given}
        touched.update(v for v, vec in likelihood.items() if vec.dim() == 2)
        touched.update(v for v, t in tables.items() if t.dim() == len(net.parents[v]) + 3)  # one table per query
        stale: set[int] = set()  # cliques whose subtree holds something of this batch
        for v in touched:
            i: int | None = self.family_home[v]
            while i is not None and i not in stale:
                stale.add(i)
                i = self.parent[i]
        kept = self._kept(tables, likelihood)

        def factors(i: int) -> list[torch.Tensor]:
            out = []
            for var in self.assigned[i]:
                out.extend(self._factors(var, tables.get(var), likelihood.get(var), do.get(var), given.get(var), batch, kind))
            return out

        up: dict[int, torch.Tensor] = {}
        message: dict[int, torch.Tensor] = {}
        for i in reversed(self.order):
            if i not in stale and i in kept:
                up[i], message[i] = kept[i]
                continue
            shape = self.cliques[i].shape
            found = factors(i) + [message[k].reshape(*message[k].shape[:2], *self._into[k]) for k in self.children[i]]
            belief = _product(found) if found else torch.ones((), **kind).expand(1, 1, *shape)
            if belief.shape[2:] != shape:  # a stride-0 axis sums like the full one
                belief = belief.expand(*belief.shape[:2], *shape)
            up[i] = belief
            if self.parent[i] is not None:
                dims = self._out[i]
                message[i] = _normalised(belief.sum(dim=dims) if dims else belief)
            if i not in stale:
                kept[i] = (up[i], message.get(i))
        # Distribute only along the paths from the roots to the cliques the targets are read from.
        needed: set[int] = set()
        for t in wanted:
            i = self.home[t]
            while i is not None and i not in needed:
                needed.add(i)
                i = self.parent[i]
        belief: dict[int, torch.Tensor] = {i: up[i] for i in self.roots}
        for i in self.order:
            if i not in needed or i in belief:
                continue
            p = self.parent[i]
            dims = self._down[i]
            down = belief[p].sum(dim=dims) if dims else belief[p]
            sent = message[i]
            down = torch.where(sent > 0, down / torch.where(sent > 0, sent, torch.ones((), **kind)), torch.zeros((), **kind))
            belief[i] = up[i] * _normalised(down).reshape(*down.shape[:2], *self._into_self[i])
        # Every query's evidence is weighed in each part's root: a zero total there is impossible evidence.
        floor = torch.finfo(kind["dtype"]).tiny / torch.finfo(kind["dtype"]).eps
        impossible = torch.zeros(1, 1, dtype=torch.bool, device=kind["device"])
        for r in self.roots:
            total = up[r].sum(dim=list(range(2, up[r].dim()))) if up[r].dim() > 2 else up[r]
            impossible = impossible | (total <= floor)
        impossible = impossible.expand(samples, batch)
        out: dict[str, torch.Tensor] = {}
        for t, rows in wanted.items():
            i = self.home[t]
            dims = [2 + j for j, v in enumerate(self.cliques[i].variables) if v != t]
            held = belief[i]
            if rows is not None and held.shape[1] > 1:  # only the queries that ask about t
                held = held.index_select(1, rows)
            count = batch if rows is None else len(rows)
            joint = held.sum(dim=dims) if dims else held
            joint = joint.reshape(joint.shape[0], joint.shape[1], -1).expand(samples, count, net.card(t))
            total = joint.sum(-1, keepdim=True)
            lost = impossible if rows is None else impossible.index_select(1, rows)
            out[t] = torch.where(lost.unsqueeze(-1), torch.nan, joint / total.clamp_min(floor))
        return out, impossible

    def _factors(self, var, table, vec, do, given, batch, kind) -> list[torch.Tensor]:
        """``var``'s table (one-hot where a query sets it) and evidence, viewed into its home clique."""
        net = self.network
        card = net.card(var)
        parents = len(net.parents[var])
        if table is not None and table.dim() == parents + 2:
            table = table.unsqueeze(1)
        if do is not None:
            mask, index = do
            hot = torch.nn.functional.one_hot(index, card).to(**kind).reshape(1, batch, *[1] * parents, card)
            table = hot if table is None else torch.where(mask.reshape(1, batch, *[1] * (parents + 1)), hot, table)
        elif table is None:
            raise ValueError(f"{var} has no table: every query must set it")
        out = [self._family(var, table)]
        if vec is not None:
            vec = vec.to(**kind)
            vec = vec.reshape(1, card) if vec.dim() == 1 else vec
        if given is not None:
            mask, index = given
            seen = torch.where(mask.unsqueeze(1), torch.nn.functional.one_hot(index, card).to(**kind), torch.ones((), **kind))
            vec = seen if vec is None else vec * seen
        if vec is not None and do is not None:  # a set variable is not evidence
            vec = torch.where(do[0].unsqueeze(1), torch.ones((), **kind), vec)
        if vec is not None:
            out.append(self._vector(self.family_home[var], var, vec))
        return out

    def _kept(self, tables: Mapping[str, torch.Tensor], likelihood: Mapping[str, torch.Tensor]) -> dict:
        """The messages kept for these very tables and likelihoods (the same tensor objects),
        a fresh store if they are new; the last four sets are kept."""
        key = (tuple(tables.items()), tuple(likelihood.items()))
        for j, (seen, store) in enumerate(self._stores):
            if len(seen[0]) == len(key[0]) and len(seen[1]) == len(key[1]) and all(
                a[0] == b[0] and a[1] is b[1] for part in (0, 1) for a, b in zip(seen[part], key[part])
            ):
                self._stores.insert(0, self._stores.pop(j))
                return store
        store: dict = {}
        self._stores.insert(0, (key, store))
        del self._stores[4:]
        return store


def _product(tensors: list[torch.Tensor]) -> torch.Tensor:
    """The broadcast product, multiplied in place into the first result that has the full shape
    (no new tensor per factor)."""
    out, fresh = tensors[0], False
    for t in tensors[1:]:
        if fresh and t.dim() <= out.dim() and all(b in (1, a) for a, b in zip(out.shape[::-1], t.shape[::-1])):
            out.mul_(t)
        else:
            out, fresh = out * t, True
    return out


def _normalised(m: torch.Tensor) -> torch.Tensor:
    """A message divided by its total per draw and query (zero stays zero)."""
    if m.dim() == 2:
        return m
    total = m.sum(dim=list(range(2, m.dim())), keepdim=True)
    return m / total.clamp_min(torch.finfo(m.dtype).tiny)
