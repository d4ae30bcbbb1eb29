/// <reference lib="dom" />
/**
 * Functions that run inside the page under test (playwright serializes them; a string would be
 * evaluated with eval, which the page's Content-Security-Policy forbids, as it should).
 */

/** Whether some upload's progress bar stands between its ends. */
export function progressBetweenEnds(): boolean {
  return [...document.querySelectorAll<HTMLProgressElement>('#uploads progress')].some((bar) => bar.value > 0 && bar.value < bar.max);
}

/** A DataTransfer holding one file, as a drop from the desktop carries it. */
export function droppedFiles({ name, bytes }: { name: string; bytes: number[] }): DataTransfer {
  const data = new DataTransfer();
  data.items.add(new File([new Uint8Array(bytes)], name));
  return data;
}

/** The status of a GET of `path` by the page, with its cookie. */
export async function statusOf(path: string): Promise<number> {
  return (await fetch(path)).status;
}

/** Whether the page fits its viewport's width (no sideways scrolling). */
export function fitsWidth(): boolean {
  return document.documentElement.scrollWidth <= window.innerWidth;
}

/** Whether the "Choose files" label shows the focus ring (the file input it stands for has keyboard focus). */
export function chooserShowsFocus(): boolean {
  const label = document.querySelector('label[for="chooser"]');
  return document.activeElement?.id === 'chooser' && label !== null && getComputedStyle(label).outlineStyle === 'solid';
}
