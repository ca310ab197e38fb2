"""The catalogue of known training mistakes (`MISTAKES`), with the dotted prefixes of the
targets they and the checks name."""

from __future__ import annotations

from course.checks.core import Mistake

T = "solutions.training."
C = "solutions.checkpoint."

MISTAKES = [
    # Part 1: lr_at
    Mistake("warmup_off_by_one", T + "lr_at", "lr * (step + 1) / warmup_iters",
            "lr * step / warmup_iters",
            "the warm-up is off by one: step 0 gets learning rate 0 (a wasted step) and the "
            "peak comes one step late; use lr * (step + 1) / warmup_iters"),
    Mistake("cosine_past_max", T + "lr_at", "if step >= max_iters:", "if False:",
            "after max_iters the cosine climbs back up: return min_lr for step >= max_iters"),
    Mistake("decay_to_zero", T + "lr_at",
            "min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)",
            "0.5 * (1.0 + math.cos(math.pi * progress)) * lr",
            "the cosine ends at 0, not at min_lr: use min_lr + 0.5 (1 + cos(pi progress)) "
            "(lr - min_lr)"),
    Mistake("cosine_from_step_zero", T + "lr_at",
            "(step - warmup_iters) / max(1, max_iters - warmup_iters)", "step / max_iters",
            "the cosine is measured from step 0 instead of from the end of the warm-up, so the "
            "rate drops suddenly when the warm-up ends: progress = (step - warmup_iters) / "
            "(max_iters - warmup_iters)"),
    # Part 2: param_groups
    Mistake("decay_on_vectors", T + "param_groups",
            "p.dim() >= 2]\n    no_decay = [p for p in model.parameters() if p.requires_grad "
            "and p.dim() < 2]",
            "p.dim() >= 1]\n    no_decay = [p for p in model.parameters() if p.requires_grad "
            "and p.dim() < 1]",
            "weight decay also reaches the biases and LayerNorm gains: decay only tensors with "
            "two or more dimensions (p.dim() >= 2)"),
    Mistake("decay_in_both_groups", T + "param_groups",
            '{"params": no_decay, "weight_decay": 0.0}',
            '{"params": no_decay, "weight_decay": weight_decay}',
            "the second group (biases, LayerNorm) also gets weight decay: give it "
            "\"weight_decay\": 0.0"),
    # Part 3: train_step
    Mistake("no_zero_grad", T + "train_step",
            "    optimizer.zero_grad(set_to_none=True)\n    n = len(micro_batches)",
            "    n = len(micro_batches)",
            "the gradients of the previous step are never cleared, so they pile up: call "
            "optimizer.zero_grad(set_to_none=True) at the start of the step"),
    Mistake("loss_not_divided", T + "train_step", "(loss / n).backward()", "loss.backward()",
            "with gradient accumulation the gradients of n micro-batches add up to n times one "
            "batch's: backpropagate loss / n"),
    Mistake("clip_before_backward", T + "train_step",
            "    optimizer.zero_grad(set_to_none=True)\n    n = len(micro_batches)",
            "    optimizer.zero_grad(set_to_none=True)\n"
            "    clip_grad_norm(model.parameters(), grad_clip)\n"
            "    grad_clip = 0\n    n = len(micro_batches)",
            "the gradients are clipped before backward(), when there are none yet: clip after "
            "the backward passes and before optimizer.step()"),
    Mistake("clip_by_value", T + "train_step", "clip_grad_norm(", "nn.utils.clip_grad_value_(",
            "each gradient entry is clipped to [-grad_clip, grad_clip]; clip the total norm "
            "with clip_grad_norm"),
    Mistake("no_scheduler_step", T + "train_step", "    scheduler.step()\n", "",
            "the scheduler never steps, so the learning rate never follows the schedule: call "
            "scheduler.step() after optimizer.step()"),
    Mistake("last_micro_batch_loss", T + "train_step",
            "total = total + loss.detach().float() / n", "total = loss.detach().float()",
            "the returned loss is the last micro-batch's: return the mean over the "
            "micro-batches"),
    # Part 4: estimate_loss
    Mistake("no_eval_mode", T + "estimate_loss", "    model.eval()\n", "",
            "the loss is estimated in training mode (dropout on): call model.eval() first"),
    Mistake("mode_not_restored", T + "estimate_loss", "    model.train(was_training)\n", "",
            "the model is left in evaluation mode: give it back in the mode it came in "
            "(model.train(was_training))"),
    Mistake("last_batch_only", T + "estimate_loss", "out[name] = total / eval_iters",
            "out[name] = loss.item()",
            "the estimate is the last batch's loss: average all eval_iters batches"),
    # Part 5: checkpoint
    Mistake("rng_not_restored", C + "load_checkpoint", '        set_rng_states(state["rng"])\n',
            "", "the random states are not restored, so dropout after resuming differs from the "
            "uninterrupted run: call set_rng_states(state[\"rng\"])"),
    Mistake("optimizer_not_restored", C + "load_checkpoint",
            'optimizer.load_state_dict(state["optimizer"])', "pass",
            "the optimizer's state (AdamW's running averages) is not restored: call "
            "optimizer.load_state_dict(state[\"optimizer\"])"),
    Mistake("scheduler_not_restored", C + "load_checkpoint",
            'scheduler.load_state_dict(state["scheduler"])', "pass",
            "the scheduler is not restored, so the learning rate restarts from step 0: call "
            "scheduler.load_state_dict(state[\"scheduler\"])"),
    Mistake("data_position_not_restored", C + "load_checkpoint",
            'data_generator.set_state(state["data_rng"])', "pass",
            "the batch generator is not restored, so the resumed run sees other batches: call "
            "data_generator.set_state(state[\"data_rng\"])"),
    Mistake("optimizer_not_saved", C + "save_checkpoint", '"optimizer": optimizer.state_dict(),',
            "", "the optimizer's state is not saved: store optimizer.state_dict() under "
            "\"optimizer\""),
    Mistake("not_atomic", C + "save_checkpoint", "torch.save(state, tmp)\n    os.replace(tmp, path)",
            "torch.save(state, path)",
            "the checkpoint is written straight to path, so a crash while writing leaves a "
            "broken file where the previous checkpoint was: torch.save to a temporary file in "
            "the same folder, then os.replace(tmp, path)"),
    # Part 6: fit
    Mistake("trains_on_validation", T + "fit", 'get_batch(data["train"]', 'get_batch(data["val"]',
            "the batches come from the validation split: train on data[\"train\"] only"),
    Mistake("no_param_groups", T + "fit", "param_groups(model, config.weight_decay), lr=config.lr,",
            "model.parameters(), lr=config.lr, weight_decay=config.weight_decay,",
            "AdamW gets all parameters with weight decay: pass param_groups(model, "
            "config.weight_decay)"),
    Mistake("no_accumulation", T + "fit", "for _ in range(config.grad_accum)]", "for _ in range(1)]",
            "each step uses one micro-batch: draw config.grad_accum micro-batches per step"),
]
