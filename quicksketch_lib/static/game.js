// QuickSketch Game: the browser half of quicksketch_lib.widgets.Game (anywidget).
//
// The kernel runs the game (game.GameSession): prompts, guesses, the clock, won or lost, the
// summary. This side collects pointer strokes (mouse, pen, touch), shows a countdown, handles
// the keyboard and draws what Python sends back. Messages to Python:
//   {kind: "start"}                        start the next round (the "Go!" button, space or enter)
//   {kind: "draw", strokes, seq, final}    the round's strokes [[xs, ys, ts], ...]: final on pen-up,
//                                          else a throttled live update while the pen moves (one in
//                                          flight at a time: Python acknowledges with _ack = seq)
//   {kind: "tick"}                         the countdown reached zero here (the kernel also keeps
//                                          its own timer: it decides time-outs either way)
//   {kind: "skip"} {kind: "end"} {kind: "again"}
// Python answers with traits: _phase ("ready" | "drawing" | "over"), _round, _rounds, _prompt,
// _seconds, _remaining, _phrase, _guesses, _target_p, _threshold, _last, _summary, _pictures, _error.
// Class names starting with qs- and the data-* attributes on the root are stable: tests read them.

const LIVE_MS = 150; // a live guess at most every 150 ms while the pen moves (>= 5 a second)
const LIVE_TIMEOUT_MS = 1500; // send again if an acknowledgement never came
const TICK_MS = 500; // after the countdown reached zero, remind the kernel this often
const REPLAY_SPEED = 2; // the summary's replay runs at twice the players' speed
// SIZE, el, bytesOf, fitSquare, canvasPoint and drawStrokes: common.js, put in front of this file.

const percent = (p) => `${Math.round(100 * p)}%`;

// The bounding box of strokes, for drawing them scaled into a thumbnail.
function extent(strokes) {
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const [xs, ys] of strokes) {
    for (let i = 0; i < xs.length; i++) {
      x0 = Math.min(x0, xs[i]); x1 = Math.max(x1, xs[i]);
      y0 = Math.min(y0, ys[i]); y1 = Math.max(y1, ys[i]);
    }
  }
  return x0 <= x1 ? { x0, y0, w: x1 - x0, h: y1 - y0 } : null;
}

// A 28x28 picture (784 bytes) as ink on paper, optionally with a saliency map overlaid in orange.
function paintPicture(canvas, pixels, heat) {
  canvas.width = SIZE;
  canvas.height = SIZE;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(SIZE, SIZE);
  for (let i = 0; i < SIZE * SIZE; i++) {
    const paper = 255 - (pixels[i] || 0); // white paper, dark ink
    const h = heat ? heat[i] / 255 : 0;
    img.data[4 * i] = Math.round(paper * (1 - h) + 232 * h);
    img.data[4 * i + 1] = Math.round(paper * (1 - h) + 89 * h);
    img.data[4 * i + 2] = Math.round(paper * (1 - h) + 12 * h);
    img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

// ------------------------------------------------------------------ the summary
// One card per round: the drawing, prompt, won or lost and when, the top-3, what the model
// looked at, and for a lost round the nearest drawings of its guess and of the prompt.
function summaryCard(parent, round, picture) {
  const card = el("div", `qs-summary-card ${round.won ? "qs-won" : "qs-lost"}`, parent);
  card.dataset.prompt = round.prompt;
  card.dataset.won = round.won ? "1" : "0";
  card.dataset.seconds = round.seconds === null ? "" : String(round.seconds);
  const head = el("div", "qs-summary-head", card);
  el("span", "qs-summary-prompt", head, round.prompt);
  el("span", "qs-summary-outcome", head, round.outcome);
  const row = el("div", "qs-summary-row", card);
  const drawing = el("canvas", "qs-summary-drawing", row);
  const looked = el("div", "qs-summary-looked", row);
  const saliency = el("canvas", "qs-summary-saliency", looked);
  paintPicture(saliency, picture(round.input), picture(round.heat));
  el("div", "qs-summary-caption", looked, `where it looked for ${round.top3.length ? round.top3[0][0] : "…"}`);
  const top3 = el("ol", "qs-summary-top3", card);
  for (const [name, p] of round.top3) {
    const item = el("li", name === round.prompt ? "qs-summary-target" : "", top3);
    item.dataset.class = name;
    item.textContent = `${name} ${percent(p)}`;
  }
  if (round.top3.length && !round.top3.some(([name]) => name === round.prompt)) {
    el("div", "qs-summary-target qs-summary-prompt-p", card, `${round.prompt}: ${percent(round.p_prompt)}`);
  }
  if (round.nearest.length) {
    const why = el("div", "qs-summary-why", card);
    for (const group of round.nearest) {
      const line = el("div", "qs-summary-nearest", why);
      line.dataset.class = group.class;
      el("span", "qs-summary-caption", line, group.caption);
      for (const index of group.pictures) paintPicture(el("canvas", "qs-thumb", line), picture(index));
    }
  }
  return { drawing, strokes: round.strokes };
}

// Draw every summary drawing whole (until = Infinity) or as it was at `until` ms.
function paintDrawings(drawings, until = Infinity) {
  for (const { drawing, strokes } of drawings) {
    const ctx = drawing.getContext("2d");
    const side = fitSquare(drawing, ctx, 140);
    ctx.clearRect(0, 0, side, side);
    const box = extent(strokes);
    if (!box) continue;
    const scale = (side * 0.8) / Math.max(box.w, box.h, 1);
    ctx.translate(side / 2 - scale * (box.x0 + box.w / 2), side / 2 - scale * (box.y0 + box.h / 2));
    ctx.scale(scale, scale);
    ctx.strokeStyle = "#1a1a1a";
    drawStrokes(ctx, strokes, 4 / scale, until);
  }
}

// ------------------------------------------------------------------ the widget
function render({ model, el: root }) {
  root.classList.add("qs-game");
  root.tabIndex = 0; // keyboard shortcuts need focus
  root.setAttribute("data-lm-suppress-shortcuts", "true"); // space and Esc are ours, not JupyterLab's

  const top = el("div", "qs-game-top", root);
  const roundLabel = el("span", "qs-game-round", top);
  const promptLine = el("span", "qs-game-prompt-line", top);
  el("span", "", promptLine, "Draw ");
  const prompt = el("span", "qs-game-prompt", promptLine);
  const clock = el("span", "qs-game-clock", top);

  const stage = el("div", "qs-game-stage", root);
  const canvas = el("canvas", "qs-game-canvas", stage);
  const card = el("div", "qs-game-card", stage);
  const cardLast = el("div", "qs-game-last", card);
  const cardRound = el("div", "qs-game-card-round", card);
  const cardPrompt = el("div", "qs-game-card-prompt", card);
  const cardHint = el("div", "qs-game-card-hint", card);
  const go = el("button", "qs-game-go", card, "Go!");

  const speech = el("div", "qs-game-phrase", root);
  const meter = el("div", "qs-game-meter", root);
  const meterFill = el("span", "qs-game-meter-fill", meter);
  const meterMark = el("span", "qs-game-meter-mark", meter);
  const meterText = el("span", "qs-game-meter-text", meter);
  const guesses = el("div", "qs-game-guesses", root);

  const buttons = el("div", "qs-game-buttons", root);
  const clear = el("button", "qs-game-clear", buttons, "Clear");
  const skip = el("button", "qs-game-skip", buttons, "Skip (space)");
  const end = el("button", "qs-game-end", buttons, "End game (Esc)");

  const summary = el("div", "qs-game-summary", root);
  const summaryHead = el("div", "qs-summary-header", summary);
  const summaryTitle = el("span", "qs-summary-title", summaryHead);
  const replay = el("button", "qs-game-replay", summaryHead, "Replay");
  const again = el("button", "qs-game-again", summaryHead, "New game");
  const cards = el("div", "qs-summary-cards", summary);

  const error = el("div", "qs-error", root);
  const modelLine = el("div", "qs-model", root);

  const ctx = canvas.getContext("2d");
  let side = 0;
  let strokes = []; // this round's finished strokes, [xs, ys, ts] in canvas pixels
  let current = null; // the stroke being drawn
  let roundStart = 0; // performance.now() when this browser saw the round start
  let deadline = 0; // performance.now() when the countdown reaches zero here
  let seq = 0, sentAt = 0, lastLive = 0, lastTick = 0;
  let drawings = []; // the summary's drawing canvases, for the replay
  let replaying = null;
  let shownPhase = null;

  // ---------------------------------------------------------------- the canvas
  function resize() {
    side = fitSquare(canvas, ctx, 360);
    redraw();
  }

  const penWidth = () => Math.max(2, side * model.get("_line_fraction"));

  function redraw() {
    ctx.clearRect(0, 0, side, side);
    ctx.strokeStyle = getComputedStyle(canvas).color || "#111";
    drawStrokes(ctx, current ? [...strokes, current] : strokes, penWidth());
  }

  // While the pen moves, only the new piece of the stroke is drawn (a busy page stays smooth).
  function extendStroke(from) {
    const [xs, ys] = current;
    drawStrokes(ctx, [[xs.slice(Math.max(0, from - 1)), ys.slice(Math.max(0, from - 1))]], penWidth());
  }

  function sendDraw(final) {
    seq += 1;
    sentAt = performance.now();
    const all = current ? [...strokes, current] : strokes;
    model.send({ kind: "draw", strokes: all, seq, final });
  }

  function point(event) {
    const [x, y] = canvasPoint(canvas, side, event);
    current[0].push(x);
    current[1].push(y);
    current[2].push(Math.round(event.timeStamp - roundStart)); // ms into the round
  }

  const drawing = () => model.get("_phase") === "drawing";

  canvas.addEventListener("pointerdown", (event) => {
    if (!drawing() || event.button !== 0) return;
    event.preventDefault();
    root.focus({ preventScroll: true });
    try {
      canvas.setPointerCapture(event.pointerId); // keep the stroke when the pen leaves the canvas
    } catch {
      // a pointer that is already gone (or a synthetic one): draw without capture
    }
    current = [[], [], []];
    point(event);
    redraw();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!current) return;
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
    const from = current[0].length;
    for (const e of events.length ? events : [event]) point(e);
    extendStroke(from);
    const now = performance.now();
    const waiting = seq > model.get("_ack") && now - sentAt < LIVE_TIMEOUT_MS;
    if (!waiting && now - lastLive >= LIVE_MS) {
      lastLive = now;
      sendDraw(false);
    }
  });
  const finish = (event) => {
    if (!current) return;
    if (event.type === "pointerup") point(event);
    strokes.push(current);
    current = null;
    redraw();
    if (drawing()) sendDraw(true);
  };
  canvas.addEventListener("pointerup", finish);
  canvas.addEventListener("pointercancel", finish);

  // ---------------------------------------------------------------- the clock
  function showClock() {
    if (!drawing()) {
      clock.textContent = "";
      return;
    }
    const left = Math.max(0, deadline - performance.now()) / 1000;
    clock.textContent = `0:${String(Math.ceil(left)).padStart(2, "0")}`;
    clock.classList.toggle("qs-hurry", left <= 5);
    root.dataset.left = left.toFixed(1);
    if (left <= 0 && performance.now() - lastTick >= TICK_MS) {
      lastTick = performance.now();
      model.send({ kind: "tick" });
    }
  }
  const timer = setInterval(showClock, 100);

  // ---------------------------------------------------------------- what Python sends
  function showPhase() {
    const phase = model.get("_phase");
    root.dataset.phase = phase;
    root.dataset.round = String(model.get("_round"));
    root.dataset.prompt = model.get("_prompt");
    roundLabel.textContent = phase === "over" ? "" : `Round ${model.get("_round")} of ${model.get("_rounds")}`;
    prompt.textContent = model.get("_prompt");
    promptLine.hidden = phase !== "drawing";
    card.hidden = phase !== "ready";
    stage.hidden = phase === "over";
    for (const node of [speech, meter, guesses, buttons]) node.hidden = phase === "over";
    summary.hidden = phase !== "over";
    clear.disabled = skip.disabled = phase !== "drawing";
    if (phase === "ready") {
      strokes = [];
      current = null;
      cardRound.textContent = `Round ${model.get("_round")} of ${model.get("_rounds")}`;
      cardPrompt.textContent = `Draw ${model.get("_prompt")}`;
      cardHint.textContent = `in under ${model.get("_seconds")} seconds`;
    }
    if (phase === "drawing" && shownPhase !== "drawing") { // a round starts: its clock starts here
      roundStart = performance.now();
      deadline = roundStart + 1000 * model.get("_remaining");
      root.focus({ preventScroll: true });
    }
    shownPhase = phase;
    showLast();
    redraw();
    showClock();
  }

  function showRemaining() {
    deadline = performance.now() + 1000 * model.get("_remaining");
    showClock();
  }

  function showLast() {
    const last = model.get("_last");
    cardLast.textContent = last && last.prompt ? last.outcome : "";
    cardLast.className = `qs-game-last ${last && last.won ? "qs-won" : "qs-lost"}`;
  }

  function showGuesses() {
    const phrase = model.get("_phrase");
    speech.textContent = phrase || (drawing() ? "…" : "");
    root.dataset.phrase = phrase;
    const p = model.get("_target_p");
    const threshold = model.get("_threshold");
    meterFill.style.width = `${(100 * p).toFixed(1)}%`;
    meterMark.style.left = `${(100 * threshold).toFixed(1)}%`;
    meterText.textContent = `${model.get("_prompt")}: ${percent(p)} (wins at ${percent(threshold)})`;
    guesses.replaceChildren();
    for (const [name, q] of model.get("_guesses")) {
      const row = el("span", "qs-game-guess", guesses, `${name} ${percent(q)}`);
      row.dataset.class = name;
    }
    root.dataset.updates = String(model.get("_updates"));
    root.dataset.strokes = String(model.get("_shown_strokes"));
  }

  function showSummary() {
    const rounds = model.get("_summary");
    const pixels = bytesOf(model.get("_pictures"));
    const picture = (k) => (k === null || k === undefined ? null : pixels.subarray(k * SIZE * SIZE, (k + 1) * SIZE * SIZE));
    const won = rounds.filter((r) => r.won).length;
    summaryTitle.textContent = `You drew ${rounds.length} drawings; the model recognised ${won}.`;
    cards.replaceChildren();
    drawings = rounds.map((round) => summaryCard(cards, round, picture));
    paintDrawings(drawings);
    root.dataset.summary = String(rounds.length);
  }

  function replayDrawings() {
    if (replaying) cancelAnimationFrame(replaying);
    const longest = Math.max(0, ...drawings.flatMap((d) => d.strokes.map((s) => s[2][s[2].length - 1] || 0)));
    const t0 = performance.now();
    root.dataset.replaying = "1";
    const frame = () => {
      const t = (performance.now() - t0) * REPLAY_SPEED;
      paintDrawings(drawings, t);
      if (t < longest) {
        replaying = requestAnimationFrame(frame);
      } else {
        replaying = null;
        root.dataset.replaying = "";
      }
    };
    frame();
  }

  // ---------------------------------------------------------------- buttons and keys
  const send = (kind) => () => model.send({ kind });
  go.addEventListener("click", send("start"));
  skip.addEventListener("click", send("skip"));
  end.addEventListener("click", send("end"));
  again.addEventListener("click", send("again"));
  replay.addEventListener("click", replayDrawings);
  clear.addEventListener("click", () => {
    strokes = [];
    current = null;
    redraw();
    sendDraw(true);
  });
  root.addEventListener("keydown", (event) => {
    const phase = model.get("_phase");
    let kind = null;
    if (event.key === "Escape" && phase !== "over") kind = "end";
    else if ((event.key === " " || event.key === "Enter") && phase === "ready") kind = "start";
    else if (event.key === " " && phase === "drawing") kind = "skip";
    if (!kind) return;
    event.preventDefault();
    event.stopPropagation();
    model.send({ kind });
  });

  model.on("change:_phase", showPhase);
  model.on("change:_round", showPhase);
  model.on("change:_prompt", showPhase);
  model.on("change:_remaining", showRemaining);
  model.on("change:_last", showLast);
  for (const name of ["_phrase", "_guesses", "_target_p", "_updates", "_shown_strokes"]) model.on(`change:${name}`, showGuesses);
  model.on("change:_summary", showSummary);
  model.on("change:_pictures", showSummary);
  model.on("change:_error", () => { error.textContent = model.get("_error"); });
  modelLine.textContent = `model: ${model.get("_model_info")}`;
  error.textContent = model.get("_error");

  const observer = new ResizeObserver(resize);
  observer.observe(canvas);
  showRemaining();
  showPhase();
  showGuesses();
  showSummary();
  resize();
  return () => {
    observer.disconnect();
    clearInterval(timer);
    if (replaying) cancelAnimationFrame(replaying);
  };
}

export default { render };
