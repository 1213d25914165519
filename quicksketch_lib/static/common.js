// QuickSketch widgets: helpers shared by sketchpad.js and game.js. Python puts this file in
// front of each widget's module (widgets.widget_module), so both use one copy.

const SIZE = 28; // the model's input is SIZE x SIZE pixels

// A new element with a class and text, appended to `parent`.
function el(tag, cls, parent, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  if (parent) parent.appendChild(node);
  return node;
}

// A binary trait (bytes from Python: DataView, ArrayBuffer or typed array) as a Uint8Array.
function bytesOf(value) {
  if (!value) return new Uint8Array(0);
  if (value instanceof DataView) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (value.buffer) return new Uint8Array(value.buffer, value.byteOffset || 0, value.byteLength);
  return new Uint8Array(value);
}

// Size a square canvas's pixels to its CSS width times the screen's pixel ratio; returns the
// side in CSS pixels (the unit strokes are drawn in).
function fitSquare(canvas, ctx, fallback) {
  const side = Math.round(canvas.getBoundingClientRect().width) || fallback;
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(side * dpr);
  canvas.height = Math.round(side * dpr);
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return side;
}

// Where a pointer event is on a canvas of `side` CSS pixels, to 0.1 px.
function canvasPoint(canvas, side, event) {
  const box = canvas.getBoundingClientRect();
  return [Math.round(((event.clientX - box.left) * side) / box.width * 10) / 10,
          Math.round(((event.clientY - box.top) * side) / box.height * 10) / 10];
}

// Strokes [[xs, ys(, ts)], ...] with a round pen of `width`; `until` (ms) keeps only the points
// drawn by then (strokes with times).
function drawStrokes(ctx, strokes, width, until = Infinity) {
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.lineWidth = width;
  for (const [xs, ys, ts] of strokes) {
    let n = 0;
    while (n < xs.length && (!ts || ts[n] <= until)) n++;
    if (n === 0) continue;
    ctx.beginPath();
    ctx.moveTo(xs[0], ys[0]);
    if (n === 1) ctx.lineTo(xs[0] + 0.01, ys[0]);
    for (let i = 1; i < n; i++) ctx.lineTo(xs[i], ys[i]);
    ctx.stroke();
  }
}
