"""Per-epoch progress: a bar on a terminal, plain log lines otherwise; only the main process reports."""
from __future__ import annotations

import logging
import sys
from typing import Any, Dict, Optional

_logger = logging.getLogger("tinynet-train")


class Progress:
    def __init__(self, epoch: int, epochs: int, enabled: bool = True) -> None:
        self.epoch, self.epochs, self.enabled = epoch, epochs, enabled
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(desc=f"epoch {epoch + 1}/{epochs}", unit="batch", leave=False, dynamic_ncols=True)

    def advance(self, step: int, steps: int) -> None:
        """Every step: move the bar (no metrics, so no device synchronisation)."""
        if self.bar is not None:
            self.bar.total = steps
            self.bar.update(step - self.bar.n)

    def update(self, step: int, steps: int, loss: float, img_per_s: float, lr: float) -> None:
        """Every log interval: the running loss, throughput and learning rate."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{img_per_s:.1f}", lr=f"{lr:.3g}")
        else:
            _logger.info(f"epoch {self.epoch + 1}/{self.epochs} [{step}/{steps}] loss {loss:.4f} "
                         f"{img_per_s:.1f} img/s lr {lr:.4g}")

    def close(self, row: Optional[Dict[str, Any]] = None) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.enabled and row is not None:
            ema = f" | EMA top-1 {row['ema_eval_top1']}%" if row.get("ema_eval_top1") != "" else ""
            _logger.info(f"epoch {self.epoch + 1}/{self.epochs}: train loss {row['train_loss']:.4f}, eval loss "
                         f"{row['eval_loss']:.4f}, top-1 {row['eval_top1']}%, top-5 {row['eval_top5']}%{ema}, "
                         f"{row['train_img_per_s']} img/s")
