// A drawing pad on a <canvas>: dark ink on white like paper, strokes from mouse, pen or touch
// (pointer events), with undo and a pen width. Strokes are kept as points so undo can redraw.

const PAPER = "#ffffff";
const INK = "#000000";

export class DrawingPad {
  constructor(canvas, { penWidth = 18, onChange = () => {} } = {}) {
    this.canvas = canvas;
    this.context = canvas.getContext("2d");
    this.penWidth = penWidth;
    this.onChange = onChange;
    this.strokes = [];
    this.current = null;
    canvas.addEventListener("pointerdown", (e) => this.start(e));
    canvas.addEventListener("pointermove", (e) => this.move(e));
    for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) {
      canvas.addEventListener(type, () => this.end());
    }
    this.redraw();
  }

  get isEmpty() {
    return this.strokes.length === 0;
  }

  start(event) {
    if (event.pointerType === "mouse" && event.button !== 0) return;
    event.preventDefault();
    this.canvas.setPointerCapture(event.pointerId);
    this.current = { width: this.penWidth, points: [this.point(event)] };
    this.strokes.push(this.current);
    this.drawStroke(this.current);
  }

  move(event) {
    if (!this.current) return;
    // Coalesced events keep fast strokes smooth where the browser batches pointer moves.
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
    for (const e of events.length ? events : [event]) this.current.points.push(this.point(e));
    this.drawStroke(this.current);
  }

  end() {
    if (!this.current) return;
    this.current = null;
    this.onChange();
  }

  undo() {
    this.strokes.pop();
    this.redraw();
    this.onChange();
  }

  clear() {
    this.strokes = [];
    this.redraw();
    this.onChange();
  }

  /** The drawing as a PNG Blob. */
  toBlob() {
    return new Promise((resolve) => this.canvas.toBlob(resolve, "image/png"));
  }

  point(event) {
    // The canvas is drawn at 280x280 and shown at whatever size the layout gives it.
    const box = this.canvas.getBoundingClientRect();
    return [
      ((event.clientX - box.left) * this.canvas.width) / box.width,
      ((event.clientY - box.top) * this.canvas.height) / box.height,
    ];
  }

  redraw() {
    const ctx = this.context;
    ctx.fillStyle = PAPER;
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    for (const stroke of this.strokes) this.drawStroke(stroke);
  }

  drawStroke(stroke) {
    const ctx = this.context;
    const [first, ...rest] = stroke.points;
    ctx.strokeStyle = INK;
    ctx.fillStyle = INK;
    ctx.lineWidth = stroke.width;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    if (!rest.length) {
      ctx.beginPath();
      ctx.arc(first[0], first[1], stroke.width / 2, 0, Math.PI * 2);
      ctx.fill();
      return;
    }
    ctx.beginPath();
    ctx.moveTo(...first);
    for (const p of rest) ctx.lineTo(...p);
    ctx.stroke();
  }
}
