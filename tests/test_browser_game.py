"""End to end: a whole game of Quick, Draw! in JupyterLab, played by headless Chromium.

Each test starts its own JupyterLab with a one-cell notebook that shows a ``Game`` (see
test_browser.py for the server and page helpers), then plays it with the keyboard, the mouse and
touch:

- A whole game (6 rounds of 20 s, seed 0): for each prompt, a real drawing of that class from
  ../shared/data/strokes is replayed at the speed its player drew it (the strokes' timestamps).
  At least 4 of the 6 rounds must be won within their time, and the summary must show 6 drawings,
  each with its top-3. Screenshots: ``artifacts/game-round.png`` (a round in progress) and
  ``artifacts/game-summary.png`` (docs/game_round.png and docs/game_summary.png are copies).
- Time-outs, keys, touch and mouse, with two games on the page: a one-round game of 4 s is left
  blank and must be lost at its time-out; in a game of 60 s rounds, round 1 gets a stroke drawn
  with touch events (it must be guessed) and one with the mouse and is skipped with space, and
  Esc before round 2 ends the game.

The model is the shipped ``pretrained-54`` (the game's default), or the ten-class ``pretrained``
on a checkout that does not have it yet.
"""

from __future__ import annotations

import time

from quicksketch_lib.locations import PRETRAINED, PRETRAINED_54, PRETRAINED_54_PATH, resolve_checkpoint
from test_browser import ARTIFACTS, fit_to_canvas, lab_page, write_notebook
from test_widgets import recorded_drawings

GAME_MODEL = PRETRAINED_54 if PRETRAINED_54_PATH.exists() else PRETRAINED
GAME_NOTEBOOK = "game.ipynb"
READY = ".qs-game .qs-game-go"
ROUNDS, SECONDS = 6, 20
MIN_WON = 4


def game_line(**options) -> str:
    return f"Game({GAME_MODEL!r}{''.join(f', {k}={v!r}' for k, v in options.items())})"


def game_cell(*games: dict) -> str:
    """The notebook cell: one Game per dict of options (all but the last through display())."""
    lines = ["from IPython.display import display", "from quicksketch_lib.widgets import Game"]
    lines += [f"display({game_line(**g)})" for g in games[:-1]] + [game_line(**games[-1])]
    return "\n".join(lines)


def phase(game) -> str:
    return game.get_attribute("data-phase")


def wait_until(page, game, condition: str, seconds: float = 30) -> None:
    """Wait until ``condition`` (JavaScript about ``d``, the game's data-* attributes) holds."""
    page.wait_for_function(f"el => {{ const d = el.dataset; return {condition}; }}",
                           arg=game.element_handle(), timeout=seconds * 1000)


def start_round(page, game, number: int) -> tuple[str, float]:
    """Press space on the round's card; returns the prompt once the round is on, and when the
    key was pressed (the kernel starts the round's clock after that)."""
    wait_until(page, game, f"d.phase === 'ready' && d.round === '{number}'")
    game.focus()
    pressed = time.monotonic()
    page.keyboard.press("Space")
    wait_until(page, game, "d.phase === 'drawing'")
    return game.get_attribute("data-prompt"), pressed


def timed_strokes(drawing, side: float) -> list[list[list[float]]]:
    """A raw Quick Draw drawing scaled into the canvas (CSS pixels), with its points' times (ms)."""
    return [[xs, ys, list(stroke[2])] for (xs, ys), stroke in zip(fit_to_canvas(drawing, side), drawing)]


# Replays strokes on the game's canvas with pointer events dispatched in the page, each point at
# the time its player drew it (timers in the page: a busy test process cannot slow the strokes
# down); stops when the round ends. Sets data-drawn on the root to the strokes drawn so far.
REPLAY_JS = """([root, strokes]) => {
  const canvas = root.querySelector('.qs-game-canvas');
  const box = canvas.getBoundingClientRect();
  const t0 = performance.now();
  const until = ms => new Promise(done => setTimeout(done, Math.max(0, t0 + ms - performance.now())));
  const fire = (type, x, y) => canvas.dispatchEvent(new PointerEvent(type, {
    clientX: box.left + x, clientY: box.top + y, pointerId: 1, pointerType: 'mouse', isPrimary: true,
    button: 0, buttons: type === 'pointerup' ? 0 : 1, bubbles: true, cancelable: true}));
  root.dataset.drawn = '0';
  window.qsReplay = (async () => {
    for (const [xs, ys, ts] of strokes) {
      for (let i = 0; i < xs.length && root.dataset.phase === 'drawing'; i++) {
        await until(ts[i]);
        fire(i === 0 ? 'pointerdown' : 'pointermove', xs[i], ys[i]);
      }
      if (root.dataset.phase !== 'drawing') break;
      fire('pointerup', xs[xs.length - 1], ys[ys.length - 1]);
      root.dataset.drawn = String(Number(root.dataset.drawn) + 1);
    }
    root.dataset.drawn = 'done';
  })();
}"""


def draw_at_human_speed(page, game, drawing) -> None:
    """Start replaying ``drawing`` at its player's speed (it runs in the page; see REPLAY_JS)."""
    canvas = game.locator(".qs-game-canvas")
    canvas.scroll_into_view_if_needed()
    page.evaluate(REPLAY_JS, [game.element_handle(), timed_strokes(drawing, canvas.bounding_box()["width"])])


def summary_cards(game) -> list[dict]:
    return game.locator(".qs-summary-card").evaluate_all(
        """cards => cards.map(c => ({prompt: c.dataset.prompt, won: c.dataset.won === '1',
             seconds: c.dataset.seconds === '' ? null : Number(c.dataset.seconds),
             outcome: c.querySelector('.qs-summary-outcome').textContent,
             top3: [...c.querySelectorAll('.qs-summary-top3 li')].map(li => li.dataset.class),
             nearest: c.querySelectorAll('.qs-summary-nearest .qs-thumb').length}))""")


def test_play_a_whole_game_in_jupyterlab(tmp_path, strokes_dir):
    (tmp_path / "root").mkdir()
    write_notebook(tmp_path / "root" / GAME_NOTEBOOK, game_cell(dict(rounds=ROUNDS, seconds=SECONDS, seed=0)))
    ARTIFACTS.mkdir(exist_ok=True)
    log, shot = [], []
    with lab_page(tmp_path, GAME_NOTEBOOK, resolve_checkpoint(GAME_MODEL), READY) as page:
        game = page.locator(".qs-game").first
        t_game = time.monotonic()
        for number in range(1, ROUNDS + 1):
            prompt, _ = start_round(page, game, number)
            drawing = recorded_drawings(prompt, limit=1)[0]  # the first player's drawing: not chosen by the model

            t0 = time.monotonic()
            draw_at_human_speed(page, game, drawing)
            if not shot and len(drawing) >= 3:  # the first round with 3 strokes or more: a screenshot of it
                wait_until(page, game, "['2', 'done'].includes(d.drawn)", SECONDS + 10)
                if phase(game) == "drawing":
                    game.screenshot(path=str(ARTIFACTS / "game-round.png"))
                    shot.append(prompt)
            wait_until(page, game, "d.drawn === 'done'", SECONDS + 10)
            drawn = time.monotonic() - t0
            updates = game.get_attribute("data-updates")
            wait_until(page, game, f"d.round !== '{number}' || d.phase === 'over'", SECONDS + 10)
            log.append(f"{prompt}: drew {drawn:.1f} s, {updates} guesses; "
                       f"{game.locator('.qs-game-last').inner_text()}")
        wait_until(page, game, f"d.phase === 'over' && d.summary === '{ROUNDS}'", 60)
        played = time.monotonic() - t_game
        cards = summary_cards(game)
        error = game.locator(".qs-error").inner_text()
        game.locator(".qs-game-replay").click()
        wait_until(page, game, "d.replaying === '1'", 5)
        wait_until(page, game, "d.replaying === ''", 60)
        game.screenshot(path=str(ARTIFACTS / "game-summary.png"))
    print(f"played {ROUNDS} rounds in {played:.0f} s:", *log, sep="\n  ")
    assert error == "", f"the game reported an error: {error}"
    assert len(cards) == ROUNDS, f"the summary shows {len(cards)} drawings: {cards}"
    assert all(len(c["top3"]) == 3 for c in cards), [c["top3"] for c in cards]
    won = [c for c in cards if c["won"]]
    assert all(0 < c["seconds"] <= SECONDS for c in won), won
    assert len(won) >= MIN_WON, f"won {len(won)} of {ROUNDS}: {[(c['prompt'], c['outcome']) for c in cards]}"
    lost = [c for c in cards if not c["won"]]
    assert all(c["nearest"] == 6 for c in lost), "a lost round shows 3 nearest drawings of the guess and 3 of the prompt"


SHORT = 4  # seconds of the round left blank


def touch_stroke(page, canvas) -> None:
    """One stroke drawn with a finger (CDP touch events), across the middle of the canvas."""
    box = canvas.bounding_box()
    cdp = page.context.new_cdp_session(page)
    y = box["y"] + box["height"] / 2
    points = [(box["x"] + box["width"] * f, y + 30 * (f - 0.5)) for f in (0.2, 0.35, 0.5, 0.65, 0.8)]
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": points[0][0], "y": points[0][1]}]})
    for x, y in points[1:]:
        time.sleep(0.05)
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def mouse_stroke(page, canvas) -> None:
    """One stroke drawn with the mouse (Playwright's real input), down the middle of the canvas."""
    box = canvas.bounding_box()
    x = box["x"] + box["width"] / 2
    page.mouse.move(x, box["y"] + box["height"] * 0.2)
    page.mouse.down()
    for f in (0.4, 0.6, 0.8):
        page.mouse.move(x + 20 * f, box["y"] + box["height"] * f)
    page.mouse.up()


def test_a_blank_round_is_lost_at_time_out_keys_touch_and_mouse(tmp_path):
    (tmp_path / "root").mkdir()
    write_notebook(tmp_path / "root" / GAME_NOTEBOOK,
                   game_cell(dict(rounds=1, seconds=SHORT, seed=1), dict(rounds=2, seconds=60, seed=2)))
    with lab_page(tmp_path, GAME_NOTEBOOK, resolve_checkpoint(GAME_MODEL), READY) as page:
        blank, played = page.locator(".qs-game").nth(0), page.locator(".qs-game").nth(1)
        _, t0 = start_round(page, blank, 1)
        wait_until(page, blank, "d.phase === 'over'", SHORT + 60)  # no stroke, no key: the time-out
        blank_lost_after = time.monotonic() - t0
        blank_cards = summary_cards(blank)

        played.scroll_into_view_if_needed()
        start_round(page, played, 1)
        canvas = played.locator(".qs-game-canvas")
        touch_stroke(page, canvas)
        wait_until(page, played, "Number(d.updates) > 0")
        guessed = played.locator(".qs-game-guess").count()
        mouse_stroke(page, canvas)
        wait_until(page, played, "d.strokes === '2'")  # both strokes reached the kernel
        page.keyboard.press("Space")  # skip
        wait_until(page, played, "d.phase === 'ready' && d.round === '2'")
        page.keyboard.press("Escape")  # end the game before round 2
        wait_until(page, played, "d.phase === 'over'")
        played_cards = summary_cards(played)
        errors = [g.locator(".qs-error").inner_text() for g in (blank, played)]
    print(f"the blank round was over {blank_lost_after:.1f} s after space was pressed ({SHORT} s rounds)")
    assert errors == ["", ""], f"the games reported errors: {errors}"
    assert [(c["won"], c["outcome"], c["top3"]) for c in blank_cards] == [(False, "not recognised: time's up", [])]
    assert blank_lost_after >= SHORT, f"lost {blank_lost_after:.1f} s after the key that started a {SHORT} s round"
    assert guessed == 3, "a stroke drawn with touch is guessed (the live top-3)"
    assert [(c["won"], c["outcome"], len(c["top3"])) for c in played_cards] == [(False, "skipped", 3)]
