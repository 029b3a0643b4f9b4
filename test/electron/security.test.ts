/** The desktop window's rules that do not need Electron to check: navigation, app:// file mapping, window placement. */
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test } from 'node:test';
import { appUrlToFile, isAllowedNavigation, isSafeExternalUrl } from '../../src-main/electron/security.js';
import { DEFAULT_STATE, fitToDisplays, MIN_SIZE, parseWindowState } from '../../src-main/electron/window-state.js';

describe('Electron window security rules', () => {
  test('navigation stays inside app://studio', () => {
    assert.equal(isAllowedNavigation('app://studio/index.html'), true);
    for (const url of ['https://example.com/', 'file:///etc/passwd', 'app://other/index.html', 'javascript:alert(1)', 'not a url', 'http://127.0.0.1:7860/']) {
      assert.equal(isAllowedNavigation(url), false, url);
    }
  });

  test('only web links may open in the system browser', () => {
    assert.equal(isSafeExternalUrl('https://docs.fast.ai/'), true);
    for (const url of ['file:///bin/sh', 'smb://host/share', 'javascript:1', 'app://studio/']) assert.equal(isSafeExternalUrl(url), false, url);
  });

  test('app:// URLs map to files inside the renderer folder and nowhere else', () => {
    const root = path.resolve('/opt/app/renderer');
    assert.equal(appUrlToFile('app://studio/', root), path.join(root, 'index.html'));
    assert.equal(appUrlToFile('app://studio/assets/index-1.js', root), path.join(root, 'assets', 'index-1.js'));
    assert.equal(appUrlToFile('app://studio/assets/a%20b.css', root), path.join(root, 'assets', 'a b.css'));
    for (const url of ['app://studio/../secret', 'app://studio/%2e%2e/secret', 'app://studio/..%2f..%2fetc%2fpasswd', 'app://studio/%00', 'app://evil/index.html', 'file:///etc/passwd', 'app://studio/%E0%A4%A']) {
      const file = appUrlToFile(url, root);
      assert.ok(file === undefined || file.startsWith(root + path.sep), `${url} -> ${file}`);
    }
    assert.equal(appUrlToFile('app://studio/..%2f..%2fetc%2fpasswd', root), undefined);
  });
});

describe('window state', () => {
  test('a damaged or absent state file gives the defaults; sizes are clamped', () => {
    assert.deepEqual(parseWindowState(''), DEFAULT_STATE);
    assert.deepEqual(parseWindowState('{"width":"x"}'), DEFAULT_STATE);
    const small = parseWindowState('{"width":10,"height":10,"x":5,"y":6,"maximized":true}');
    assert.deepEqual(small, { width: MIN_SIZE.width, height: MIN_SIZE.height, x: 5, y: 6, maximized: true });
  });

  test('a window remembered on a monitor that is gone is not placed off-screen', () => {
    const laptop = { x: 0, y: 0, width: 1440, height: 900 };
    const external = { x: 1440, y: 0, width: 2560, height: 1440 };
    const onExternal = { width: 1600, height: 1000, x: 2000, y: 100, maximized: false };
    assert.deepEqual(fitToDisplays(onExternal, [laptop, external]), { ...onExternal, width: 1440, height: 900 });
    const gone = fitToDisplays(onExternal, [laptop]);
    assert.equal(gone.x, undefined, 'no position: the window manager centres it');
    assert.ok(gone.width <= laptop.width && gone.height <= laptop.height);
  });
});
