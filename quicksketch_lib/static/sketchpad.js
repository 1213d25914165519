// QuickSketch SketchPad: the browser half of quicksketch_lib.widgets.SketchPad (anywidget).
//
// This side only collects strokes and draws what Python sends back; all image maths
// (strokes -> 28x28) and prediction happen in Python.
//   - pointer events (mouse, pen, touch) build a stroke [xs, ys, ts] in canvas pixels;
//   - while drawing, a throttled custom message {kind: "preview", stroke, seq} asks for a
//     live prediction (at most one in flight: Python acknowledges with _preview_ack);
//   - on pointer-up the whole stroke list is sent as the `strokes` trait;
//   - Python answers with _input (784 bytes), _predictions, _headline and _heat.
// Teach mode (the `teach_mode` trait) adds a panel: the name box is the `class_name` trait; the
// buttons send {kind: "add_example" | "undo_example" | "teach" | "forget" | "save"}; Python keeps
// the examples and sends back their pixels (_examples, 784 bytes each) for the thumbnails,
// _taught, _status and _busy (non-empty while it teaches).

const PREVIEW_MS = 120; // at most ~8 live previews per second
const PREVIEW_TIMEOUT_MS = 1500; // resend if an acknowledgement never came
// SIZE, el, bytesOf, fitSquare, canvasPoint and drawStrokes: common.js, put in front of this file.

// The teach-mode panel: name box, examples (counter + thumbnails), Teach / Forget / Save.
function teachPanel(parent) {
  const panel = el("div", "qs-teach-panel", parent);
  el("div", "qs-teach-title", panel, "Teach it a class of your own");
  const nameRow = el("label", "qs-teach-row", panel, "name ");
  const name = el("input", "qs-teach-name", nameRow);
  name.type = "text";
  name.placeholder = "e.g. snowman";
  name.spellcheck = false;
  const hint = el("div", "qs-teach-hint", panel);
  const exampleRow = el("div", "qs-teach-row", panel);
  const add = el("button", "qs-add-example", exampleRow, "Add example");
  const undo = el("button", "qs-undo-example", exampleRow, "Undo example");
  const counter = el("div", "qs-example-count", panel);
  const thumbs = el("div", "qs-thumbs", panel);
  const actionRow = el("div", "qs-teach-row", panel);
  const teach = el("button", "qs-teach", actionRow, "Teach");
  const forget = el("button", "qs-forget", actionRow, "Forget");
  const save = el("button", "qs-save", actionRow, "Save");
  const status = el("div", "qs-teach-status", panel);
  const taught = el("div", "qs-taught", panel);
  return { panel, name, hint, add, undo, counter, thumbs, teach, forget, save, status, taught,
           buttons: [add, undo, teach, forget, save] };
}

function render({ model, el: root }) {
  root.classList.add("qs-sketchpad");
  const left = el("div", "qs-left", root);
  const canvas = el("canvas", "qs-canvas", left);
  const buttons = el("div", "qs-buttons", left);
  const undoButton = el("button", "qs-undo", buttons, "Undo");
  const clearButton = el("button", "qs-clear", buttons, "Clear");
  const explainLabel = el("label", "qs-explain-label", buttons);
  const explainBox = el("input", "qs-explain", explainLabel);
  explainBox.type = "checkbox";
  explainLabel.appendChild(document.createTextNode(" explain"));
  const teachLabel = el("label", "qs-teach-label", buttons);
  const teachBox = el("input", "qs-teach-toggle", teachLabel);
  teachBox.type = "checkbox";
  teachLabel.appendChild(document.createTextNode(" teach"));
  const teach = teachPanel(left);

  const right = el("div", "qs-right", root);
  el("div", "qs-caption", right, "what the model sees (28×28)");
  const input = el("canvas", "qs-input-image", right);
  input.width = SIZE;
  input.height = SIZE;
  const headline = el("div", "qs-headline", right);
  el("span", "qs-headline-prefix", headline, "guess: ");
  const top1 = el("span", "qs-top1", headline);
  const bars = el("div", "qs-bars", right);
  const footer = el("div", "qs-footer", right);
  const error = el("div", "qs-error", right);
  const modelLine = el("div", "qs-model", right);

  const ctx = canvas.getContext("2d");
  let side = 0;
  let current = null; // the stroke being drawn: [xs, ys, ts]
  let t0 = null; // time of the drawing's first point
  let lastPreview = 0;
  let sentSeq = 0;
  let sentAt = 0;
  let pendingPreview = false;

  function resize() {
    side = fitSquare(canvas, ctx, 280);
    redraw();
  }

  function redraw() {
    ctx.clearRect(0, 0, side, side);
    ctx.strokeStyle = getComputedStyle(canvas).color || "#111";
    const strokes = model.get("strokes");
    drawStrokes(ctx, current ? [...strokes, current] : strokes, Math.max(2, side * model.get("_line_fraction")));
  }

  function drawInput() {
    const pixels = bytesOf(model.get("_input"));
    const heat = model.get("explain") ? bytesOf(model.get("_heat")) : new Uint8Array(0);
    const img = input.getContext("2d").createImageData(SIZE, SIZE);
    let ink = 0;
    for (let i = 0; i < SIZE * SIZE; i++) {
      const v = pixels[i] || 0;
      const h = heat.length === SIZE * SIZE ? heat[i] / 255 : 0;
      ink += v;
      // grey input, overlaid with an orange-red heat map where the model looks
      img.data[4 * i] = Math.round(v * (1 - h) + 255 * h);
      img.data[4 * i + 1] = Math.round(v * (1 - h) + 90 * h);
      img.data[4 * i + 2] = Math.round(v * (1 - h));
      img.data[4 * i + 3] = 255;
    }
    input.getContext("2d").putImageData(img, 0, 0);
    input.dataset.ink = String(ink);
  }

  function drawBars() {
    const predictions = model.get("_predictions");
    bars.replaceChildren();
    top1.textContent = predictions.length ? predictions[0][0] : model.get("_headline");
    headline.classList.toggle("qs-blank", predictions.length === 0);
    for (const [name, p] of predictions) {
      const row = el("div", "qs-bar", bars);
      row.dataset.class = name;
      el("span", "qs-bar-label", row, name);
      const track = el("span", "qs-bar-track", row);
      el("span", "qs-bar-fill", track).style.width = `${(100 * p).toFixed(1)}%`;
      el("span", "qs-bar-value", row, `${Math.round(100 * p)}%`);
    }
    const ms = model.get("_latency_ms");
    footer.textContent = predictions.length ? `update ${ms.toFixed(1)} ms in Python` : "";
  }

  function markShown() {
    root.dataset.strokes = String(model.get("_shown_strokes"));
  }

  function showError() {
    error.textContent = model.get("_error");
  }

  function showModel() {
    modelLine.textContent = `model: ${model.get("_model_info")}`;
    root.dataset.taught = model.get("_taught").join("|");
    teach.taught.textContent = model.get("_taught").length ? `taught: ${model.get("_taught").join(", ")}` : "";
  }

  function showExamples() {
    const pixels = bytesOf(model.get("_examples"));
    const count = Math.floor(pixels.length / (SIZE * SIZE));
    const taught = model.get("_examples_of"); // after Teach: the examples that class was taught from
    teach.thumbs.replaceChildren();
    for (let k = 0; k < count; k++) {
      const thumb = el("canvas", taught ? "qs-thumb qs-thumb-taught" : "qs-thumb", teach.thumbs);
      thumb.width = SIZE;
      thumb.height = SIZE;
      const img = thumb.getContext("2d").createImageData(SIZE, SIZE);
      for (let i = 0; i < SIZE * SIZE; i++) {
        const v = pixels[k * SIZE * SIZE + i];
        img.data.set([v, v, v, 255], 4 * i);
      }
      thumb.getContext("2d").putImageData(img, 0, 0);
    }
    const name = model.get("class_name").trim() || "the new class";
    teach.hint.textContent = `Draw an example, press Add example (at least ${model.get("_min_examples")}; `
      + "about 10 work well), then Teach.";
    if (taught) {
      teach.counter.textContent = `'${taught}' was taught from these ${count}; draw one to test it`;
    } else {
      teach.counter.textContent = count === 1 ? `1 example of ${name}` : `${count} examples of ${name}`;
    }
    root.dataset.examples = taught ? "0" : String(count); // examples waiting to be taught
  }

  function showTeach() {
    teachBox.checked = model.get("teach_mode");
    teachLabel.hidden = !model.get("_can_teach");
    teach.panel.hidden = !(model.get("teach_mode") && model.get("_can_teach"));
    if (teach.name.value !== model.get("class_name")) teach.name.value = model.get("class_name");
    const busy = model.get("_busy");
    teach.status.textContent = busy || model.get("_status");
    teach.status.classList.toggle("qs-busy", busy !== "");
    for (const b of teach.buttons) b.disabled = busy !== "";
    root.dataset.busy = busy ? "1" : "";
    showExamples();
  }

  function action(kind) {
    model.set("class_name", teach.name.value);
    model.save_changes();
    model.send({ kind });
  }

  function sendStrokes(strokes) {
    model.set("strokes", strokes);
    model.save_changes();
  }

  function point(event) {
    const [x, y] = canvasPoint(canvas, side, event);
    if (t0 === null) t0 = event.timeStamp;
    current[0].push(x);
    current[1].push(y);
    current[2].push(Math.round(event.timeStamp - t0));
  }

  function maybePreview(now) {
    const waiting = sentSeq > model.get("_preview_ack") && now - sentAt < PREVIEW_TIMEOUT_MS;
    if (!current || waiting || now - lastPreview < PREVIEW_MS) return;
    lastPreview = now;
    sentSeq += 1;
    sentAt = now;
    model.send({ kind: "preview", stroke: current, seq: sentSeq });
  }

  canvas.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    if (model.get("strokes").length === 0) t0 = null;
    current = [[], [], []];
    point(event);
    redraw();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!current) return;
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
    for (const e of events.length ? events : [event]) point(e);
    redraw();
    maybePreview(event.timeStamp);
  });
  const finish = (event) => {
    if (!current) return;
    if (event.type === "pointerup") point(event);
    const stroke = current;
    current = null;
    sendStrokes([...model.get("strokes"), stroke]);
    redraw();
  };
  canvas.addEventListener("pointerup", finish);
  canvas.addEventListener("pointercancel", finish);
  undoButton.addEventListener("click", () => sendStrokes(model.get("strokes").slice(0, -1)));
  clearButton.addEventListener("click", () => sendStrokes([]));
  teach.name.addEventListener("input", () => {
    model.set("class_name", teach.name.value);
    model.save_changes();
    showExamples();
  });
  teach.add.addEventListener("click", () => action("add_example"));
  teach.undo.addEventListener("click", () => action("undo_example"));
  teach.teach.addEventListener("click", () => action("teach"));
  teach.forget.addEventListener("click", () => action("forget"));
  teach.save.addEventListener("click", () => action("save"));
  teachBox.addEventListener("change", () => {
    model.set("teach_mode", teachBox.checked);
    model.save_changes();
  });
  explainBox.addEventListener("change", () => {
    model.set("explain", explainBox.checked);
    model.save_changes();
  });

  const syncExplain = () => {
    explainBox.checked = model.get("explain");
    explainLabel.hidden = !model.get("_can_explain");
  };
  model.on("change:strokes", redraw);
  model.on("change:_input", drawInput);
  model.on("change:_heat", drawInput);
  model.on("change:explain", () => { syncExplain(); drawInput(); });
  model.on("change:_predictions", drawBars);
  model.on("change:_headline", drawBars);
  model.on("change:_error", showError);
  model.on("change:_shown_strokes", markShown);
  for (const name of ["teach_mode", "class_name", "_busy", "_status", "_examples", "_examples_of", "_can_teach"]) {
    model.on(`change:${name}`, showTeach);
  }
  model.on("change:_model_info", showModel);
  model.on("change:_taught", showModel);

  const observer = new ResizeObserver(resize);
  observer.observe(canvas);
  syncExplain();
  resize();
  drawInput();
  drawBars();
  showError();
  markShown();
  showModel();
  showTeach();
  return () => observer.disconnect();
}

export default { render };
