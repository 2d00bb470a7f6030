"""Coarse-mesh backward warps found by one weighted linear least-squares solve.

A mesh of (R+1) x (C+1) vertices sits on the TARGET grid at fixed positions (vertex (i, j) at target
pixel (j dx, i dy), dx = (W'-1)/C, dy = (H'-1)/R); the unknowns are the SOURCE positions X, Y of the
vertices, so the warp is backward (target pixel -> source position) and renders with `remap`.
Every energy term is a residual on mesh edges, linear in X, Y and one global scale s:

- similarity (weight per edge): horizontal edges stretch x by s, vertical edges stretch y by s, no
  shear -> the region keeps its aspect ratio (one s for all salient content);
- uniform: edges follow uniform scaling (x by (W-1)/(W'-1), y by (H-1)/(H'-1)) -> the default warp;
- squeeze: edges compress by `SQUEEZE_FACTOR` x uniform -> content that may go (drop mask);
- shear: horizontal edges keep y, vertical edges keep x -> straight horizontal / vertical lines
  stay straight (the weight-free structure term);
- bending: second differences of X and Y along rows and columns -> smooth warp;
- reference (per vertex): X, Y close to a given mesh (the background field, or the previous frame's
  warp carried by optical flow);
- border: the first / last column maps to source x = 0 / W-1, the first / last row to y = 0 / H-1,
  so every source pixel is covered (optional);
- scale prior: s close to the preferred backward scale.
Edge residuals are in source pixels per target pixel, vertex residuals in units of dx, so weights of
all terms are comparable. X and Y are coupled only through s.
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .warp import remap

SQUEEZE_FACTOR = 4.0
BORDER_WEIGHT = 1e6


@dataclass(frozen=True)
class MeshGrid:
    """Mesh geometry: source (H, W), target (H', W') and cells (R rows, C columns)."""
    source_size: tuple
    target_size: tuple
    rows: int
    cols: int

    @property
    def spacing(self):
        """(dx, dy): target pixels between vertices."""
        return (self.target_size[1] - 1) / self.cols, (self.target_size[0] - 1) / self.rows

    @property
    def uniform_scale(self):
        """(sx, sy): source pixels per target pixel of uniform scaling (backward)."""
        return ((self.source_size[1] - 1) / max(self.target_size[1] - 1, 1),
                (self.source_size[0] - 1) / max(self.target_size[0] - 1, 1))

    def uniform_vertices(self, dtype=torch.float64):
        """Source positions `[2,R+1,C+1]` of uniform scaling (the start of every solve)."""
        xs = torch.linspace(0, self.source_size[1] - 1, self.cols + 1, dtype=dtype)
        ys = torch.linspace(0, self.source_size[0] - 1, self.rows + 1, dtype=dtype)
        return torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1])

    def edge_midpoints(self, vertices):
        """Source positions of the edge midpoints: horizontal `[2,R+1,C]`, vertical `[2,R,C+1]`."""
        return (vertices[:, :, 1:] + vertices[:, :, :-1]) / 2, (vertices[:, 1:] + vertices[:, :-1]) / 2


def mesh_grid(source_size, target_size, cells=24):
    """MeshGrid with `cells` cells along the longer target side (at least 2 on the other)."""
    th, tw = int(target_size[0]), int(target_size[1])
    if min(th, tw) < 2:
        raise ValueError(f"target size must be at least 2x2 pixels, got {tw}x{th}.")
    cell_size = max(th, tw) / cells
    return MeshGrid((int(source_size[0]), int(source_size[1])), (th, tw),
                    rows=max(2, min(th - 1, round(th / cell_size))), cols=max(2, min(tw - 1, round(tw / cell_size))))


@dataclass
class MeshTerms:
    """Per-edge weights `(horizontal [R+1,C], vertical [R,C+1])` and the scalar weights of one solve."""
    similarity: tuple
    uniform: tuple
    squeeze: tuple
    shear: tuple
    bending: float = 0.5
    preferred_scale: float = 1.0
    scale_prior: float = 1.0
    reference: torch.Tensor = None          # [2,R+1,C+1] source px
    reference_weight: torch.Tensor = None   # [R+1,C+1]
    pin_border: bool = True


class _NormalEquations:
    """Accumulates `sum_k w_k (c_k . z - b_k)^2` into A z = r for a dense unknown vector z."""

    def __init__(self, size):
        self.matrix = torch.zeros(size * size, dtype=torch.float64)
        self.rhs = torch.zeros(size, dtype=torch.float64)
        self.size = size

    def add(self, index, coeff, target, weight):
        """index, coeff: `[M,K]` (unknown indices, coefficients); target, weight: `[M]`."""
        index, coeff = index.reshape(-1, index.shape[-1]), coeff.reshape(-1, coeff.shape[-1]).double()
        target, weight = target.reshape(-1).double(), weight.reshape(-1).double()
        weighted = coeff * weight[:, None]
        rows = index[:, :, None] * self.size + index[:, None, :]
        self.matrix.index_add_(0, rows.reshape(-1), (weighted[:, :, None] * coeff[:, None, :]).reshape(-1))
        self.rhs.index_add_(0, index.reshape(-1), (weighted * target[:, None]).reshape(-1))

    def solve_coupled(self, half):
        """Solve when unknowns [0, half) and [half, 2 half) are coupled only through the last one (s).

        Two Cholesky solves of size `half` and a scalar Schur complement instead of one dense solve of
        size 2 half + 1 (8x less work).
        """
        matrix = self.matrix.view(self.size, self.size)
        s = self.size - 1
        blocks, couplings, rhs = [], [], []
        for start in (0, half):
            block = matrix[start:start + half, start:start + half].clone()
            block.diagonal().add_(1e-9 * block.diagonal().median() + 1e-12)  # median: the border pins are huge
            blocks.append(torch.linalg.cholesky(block))
            couplings.append(matrix[start:start + half, s])
            rhs.append(self.rhs[start:start + half])
        solved = [torch.cholesky_solve(torch.stack((r, c), 1), factor)
                  for factor, r, c in zip(blocks, rhs, couplings)]
        schur = matrix[s, s] - sum(c @ sol[:, 1] for c, sol in zip(couplings, solved))
        scale = (self.rhs[s] - sum(c @ sol[:, 0] for c, sol in zip(couplings, solved))) / schur
        return torch.cat([sol[:, 0] - scale * sol[:, 1] for sol in solved] + [scale.view(1)])


def _edge_pairs(first, second, scale, target, weight):
    """Residual `(z[second] - z[first]) / scale - target` rows for `_NormalEquations.add`."""
    index = torch.stack((first.reshape(-1), second.reshape(-1)), -1)
    coeff = torch.tensor([-1.0, 1.0], dtype=torch.float64).expand(index.shape[0], 2) / scale
    return index, coeff, torch.as_tensor(target, dtype=torch.float64).expand_as(weight).reshape(-1), weight.reshape(-1)


def _add_axis_terms(system, ids, grid, terms, axis, s_index):
    """Edge terms of one coordinate (axis 0 = X on horizontal edges, 1 = Y on vertical edges)."""
    dx, dy = grid.spacing
    sx, sy = grid.uniform_scale
    along, scale, uniform = (0, dx, sx) if axis == 0 else (1, dy, sy)
    first, second = (ids[:, :-1], ids[:, 1:]) if axis == 0 else (ids[:-1], ids[1:])
    across_first, across_second, across_scale = (ids[:-1], ids[1:], dy) if axis == 0 else (ids[:, :-1], ids[:, 1:], dx)
    for weight, target in ((terms.uniform[along], uniform), (terms.squeeze[along], SQUEEZE_FACTOR * uniform)):
        system.add(*_edge_pairs(first, second, scale, target, weight))
    # similarity: (z2 - z1)/scale - s = 0, with s an unknown
    index, coeff, _, weight = _edge_pairs(first, second, scale, 0.0, terms.similarity[along])
    s_column = torch.full((index.shape[0], 1), s_index, dtype=index.dtype)
    system.add(torch.cat((index, s_column), 1), torch.cat((coeff, -torch.ones(index.shape[0], 1)), 1),
               torch.zeros(index.shape[0]), weight)
    shear_weight = terms.shear[1 - along] + terms.similarity[1 - along]
    system.add(*_edge_pairs(across_first, across_second, across_scale, 0.0, shear_weight))


def _add_bending(system, ids, grid, weight):
    dx, dy = grid.spacing
    for a, b, c, step in ((ids[:, :-2], ids[:, 1:-1], ids[:, 2:], dx), (ids[:-2], ids[1:-1], ids[2:], dy)):
        index = torch.stack((a.reshape(-1), b.reshape(-1), c.reshape(-1)), -1)
        coeff = torch.tensor([1.0, -2.0, 1.0], dtype=torch.float64).expand(index.shape[0], 3) / step
        system.add(index, coeff, torch.zeros(index.shape[0]), torch.full((index.shape[0],), float(weight)))


def _add_vertex_targets(system, ids, values, weight, scale):
    """Residual `(z - value) / scale` per vertex, weight per vertex."""
    index = ids.reshape(-1, 1)
    system.add(index, torch.full((index.shape[0], 1), 1.0 / scale, dtype=torch.float64),
               values.reshape(-1).double() / scale, weight.reshape(-1).double())


def _add_border(system, ids, grid):
    (h, w), (dx, _) = grid.source_size, grid.spacing
    columns, rows = ids[0], ids[1]
    for index, value in ((columns[:, 0], 0.0), (columns[:, -1], w - 1.0), (rows[0], 0.0), (rows[-1], h - 1.0)):
        _add_vertex_targets(system, index, torch.full(index.shape, value, dtype=torch.float64),
                            torch.full(index.shape, BORDER_WEIGHT, dtype=torch.float64), dx)


def solve_mesh(grid, terms):
    """One solve -> (vertices `[2,R+1,C+1]` float64 source px, scale s of the similarity edges)."""
    nv = (grid.rows + 1) * (grid.cols + 1)
    ids = torch.arange(2 * nv).view(2, grid.rows + 1, grid.cols + 1)
    s_index = 2 * nv
    system = _NormalEquations(2 * nv + 1)
    _add_axis_terms(system, ids[0], grid, terms, 0, s_index)
    _add_axis_terms(system, ids[1], grid, terms, 1, s_index)
    for axis_ids in ids:
        _add_bending(system, axis_ids, grid, terms.bending)
    if terms.reference is not None:
        for axis in range(2):
            _add_vertex_targets(system, ids[axis], terms.reference[axis], terms.reference_weight, grid.spacing[0])
    if terms.pin_border:
        _add_border(system, ids, grid)
    system.add(torch.tensor([[s_index]]), torch.ones(1, 1), torch.tensor([terms.preferred_scale]),
               torch.tensor([terms.scale_prior]))
    solution = system.solve_coupled(nv)
    return _untangle(solution[:2 * nv].view(2, grid.rows + 1, grid.cols + 1), grid), solution[-1].item()


def _untangle(vertices, grid, min_fraction=0.05):
    """Make X increase along rows and Y along columns (no fold-over), keeping the end vertices.

    Each step is at least `min_fraction` of the uniform step; the row (column) is rescaled so its
    first and last vertex stay where the solve put them.
    """
    result = vertices.clone()
    for axis, dim in ((0, 1), (1, 0)):
        coordinate = vertices[axis]
        steps = coordinate.diff(dim=dim)
        minimum = min_fraction * grid.uniform_scale[axis] * grid.spacing[axis]
        span = coordinate.narrow(dim, -1, 1) - coordinate.narrow(dim, 0, 1)
        clamped = steps.clamp_min(minimum)
        clamped = clamped * (span.clamp_min(minimum) / clamped.sum(dim, keepdim=True))
        result[axis] = torch.cat((coordinate.narrow(dim, 0, 1),
                                  coordinate.narrow(dim, 0, 1) + clamped.cumsum(dim)), dim)
    return result


def sample_on_edges(maps, grid, vertices):
    """Mean of `maps` `[1,K,h,w]` at the edge midpoints -> (horizontal `[K,R+1,C]`, vertical `[K,R,C+1]`).

    The maps may be a resampled copy of the source (pixel-area convention): positions are rescaled.
    """
    scale = vertices.new_tensor([maps.shape[-1] / grid.source_size[1], maps.shape[-2] / grid.source_size[0]])
    return tuple(remap(maps, ((midpoints + 0.5) * scale.view(2, 1, 1) - 0.5)[None].to(maps.dtype),
                       padding="border")[0][0] for midpoints in grid.edge_midpoints(vertices))


def dense_field(vertices, target_size):
    """Vertices `[2,R+1,C+1]` -> source coordinates of every target pixel `[1,2,H',W']` float32 (for `remap`)."""
    return F.interpolate(vertices[None].float(), size=tuple(target_size), mode="bilinear", align_corners=True)


def mesh_jacobian(vertices, grid):
    """Backward Jacobian per vertex `[2,2,R+1,C+1]` (d source / d target; [k,l] = d X_k / d t_l), central differences."""
    dx, dy = grid.spacing
    d_dx = torch.gradient(vertices, dim=2)[0] / dx
    d_dy = torch.gradient(vertices, dim=1)[0] / dy
    return torch.stack((d_dx, d_dy), 1)
